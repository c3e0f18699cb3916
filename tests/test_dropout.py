"""Tests for tinynet.layers.Dropout: inverted dropout while training, the identity at inference."""
import numpy as np
import pytest

from conftest import dev, host
from tinynet import gradcheck
from tinynet.layers import Dropout
from tinynet.utils import set_random_seed


def test_inference_is_the_identity():
    x = dev(np.random.default_rng(0).standard_normal((4, 5)))
    layer = Dropout(0.5)
    assert layer.forward(x) is x  # training=False by default: predict and evaluate
    assert layer.backward(x) is x


def test_training_drops_a_fraction_rate_and_scales_the_rest():
    set_random_seed(0)
    x = np.random.default_rng(0).uniform(1, 2, (200, 500)).astype("float32")
    layer = Dropout(0.3)
    y = host(layer.forward(dev(x), training=True))
    kept = y != 0
    assert abs(1 - kept.mean() - 0.3) < 0.005  # 100,000 draws: the fraction dropped is 0.3 to within 0.005
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)  # kept inputs scaled by 1 / (1 - rate)
    assert abs(y.mean() / x.mean() - 1) < 0.01  # the expected value is unchanged
    dy = np.ones_like(x)
    np.testing.assert_allclose(host(layer.backward(dev(dy))), kept / 0.7, rtol=1e-6)  # the same mask


def test_set_random_seed_repeats_the_mask():
    x = dev(np.ones((8, 10)))
    layer = Dropout(0.5)
    set_random_seed(3)
    first, second = host(layer.forward(x, training=True)), host(layer.forward(x, training=True))
    set_random_seed(3)
    np.testing.assert_array_equal(host(layer.forward(x, training=True)), first)
    assert not np.array_equal(first, second)  # a new mask each step


def test_rate_zero_is_the_identity_even_in_training():
    x = dev(np.ones((3, 4)))
    assert Dropout(0.0).forward(x, training=True) is x


def test_gradcheck_in_training_with_the_mask_fixed():
    """check_layer(training=True) lets every forward pass draw the same random numbers: one mask."""
    set_random_seed(0)
    x = np.random.default_rng(1).standard_normal((4, 6))
    report = gradcheck.check_layer(Dropout(0.4), x, training=True)
    assert report.ok, str(report)


@pytest.mark.host_only("configs and argument checks")
def test_config_and_no_parameters():
    layer = Dropout(0.5, name="drop")
    assert layer.get_config() == {"name": "drop", "trainable": True, "input_shape": None, "rate": 0.5}
    assert Dropout.from_config(layer.get_config()).rate == 0.5
    layer.build((None, 1600))
    assert layer.count_params() == 0 and layer.output_shape == (None, 1600)


@pytest.mark.host_only("argument checks")
@pytest.mark.parametrize("rate, error", [(1, ValueError), (1.5, ValueError), (-0.1, ValueError),
                                         (float("nan"), ValueError), ("0.5", TypeError), (None, TypeError)])
def test_rate_outside_zero_to_one(rate, error):
    with pytest.raises(error) as info:
        Dropout(rate)
    assert "rate" in str(info.value) and "[0, 1)" in str(info.value)
