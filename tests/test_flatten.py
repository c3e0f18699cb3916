"""Tests for tinynet.layers.Flatten: (N, H, W, C) -> (N, H*W*C) in NumPy's (Keras's) order, and back."""
import numpy as np
import pytest

from conftest import dev, host
from tinynet import gradcheck
from tinynet.layers import Flatten


def test_forward_is_a_row_major_reshape_and_backward_undoes_it():
    x = np.arange(2 * 3 * 2 * 4, dtype="float32").reshape(2, 3, 2, 4)
    layer = Flatten()
    y = layer.forward(dev(x))
    np.testing.assert_array_equal(host(y), x.reshape(2, 24))  # channels vary fastest, as in Keras
    dx = layer.backward(y)
    np.testing.assert_array_equal(host(dx), x)


def test_gradcheck():
    report = gradcheck.check_layer(Flatten(), np.random.default_rng(0).standard_normal((2, 3, 3, 2)))
    assert report.ok, str(report)


@pytest.mark.host_only("shapes and configs")
def test_shapes_config_and_no_parameters():
    layer = Flatten(input_shape=(5, 5, 64))
    assert layer.compute_output_shape((None, 5, 5, 64)) == (None, 1600)
    assert layer.compute_output_shape((None, 7)) == (None, 7)
    layer.build((None, 5, 5, 64))
    assert layer.output_shape == (None, 1600) and layer.count_params() == 0 and layer.get_weights() == []
    assert Flatten.from_config(layer.get_config()).get_config() == {"name": None, "trainable": True, "input_shape": [5, 5, 64]}
