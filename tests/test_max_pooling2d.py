"""Tests for tinynet.layers.MaxPooling2D (alias MaxPool2D): the maximum of each window, the gradient to its argmax."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import dev, host
from tinynet import gradcheck
from tinynet.layers import MaxPool2D, MaxPooling2D

KERAS = json.loads((Path(__file__).parent / "keras_reference" / "keras_layers.json").read_text())


def built(x_shape, **config):
    layer = MaxPooling2D(**config)
    layer.build((None, *x_shape[1:]))
    return layer


def direct_max_pool(x, pool_size, strides, padding):
    """The definition, by loops over every output pixel: the maximum of each window ('same' pads with -inf)."""
    (ph, pw), (sh, sw) = pool_size, strides
    n, h, w, c = x.shape
    if padding == "same":
        ho, wo = math.ceil(h / sh), math.ceil(w / sw)
        th, tw = max((ho - 1) * sh + ph - h, 0), max((wo - 1) * sw + pw - w, 0)
        x = np.pad(x, ((0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2), (0, 0)), constant_values=-np.inf)
    else:
        ho, wo = (h - ph) // sh + 1, (w - pw) // sw + 1
    return np.array([[[x[i, oh * sh:oh * sh + ph, ow * sw:ow * sw + pw, :].max(axis=(0, 1)) for ow in range(wo)]
                      for oh in range(ho)] for i in range(n)])


CONFIGS = [  # (input shape, MaxPooling2D arguments)
    ((2, 6, 6, 3), dict()),
    ((2, 7, 5, 2), dict()),  # 'valid' drops the last row and column
    ((2, 7, 5, 2), dict(pool_size=3, strides=2, padding="same")),  # overlapping windows, odd sizes
    ((1, 5, 6, 2), dict(pool_size=(2, 3), strides=1)),  # overlapping, each pixel in up to 6 windows
    ((2, 5, 5, 1), dict(pool_size=2, padding="same")),
]


@pytest.mark.parametrize("x_shape, config", CONFIGS)
def test_forward_matches_the_definition(x_shape, config):
    layer = built(x_shape, **config)
    x = np.random.default_rng(0).standard_normal(x_shape).astype("float32")
    expected = direct_max_pool(x, layer.pool_size, layer.strides, layer.padding)
    y = host(layer.forward(dev(x)))
    assert y.shape == layer.compute_output_shape(x_shape)
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("x_shape, config", CONFIGS)
def test_gradcheck(x_shape, config):
    x = np.random.default_rng(1).standard_normal(x_shape)  # distinct values: no ties, no kinks
    report = gradcheck.check_layer(built(x_shape, **config), x)
    assert report.ok, str(report)


def test_ties_go_to_the_first_maximum_in_row_major_order():
    """As TensorFlow's MaxPoolGrad: a candidate replaces the maximum only when strictly larger."""
    x = np.array([[1.0, 1.0, 0.0, 2.0],
                  [1.0, 1.0, 2.0, 1.0],
                  [3.0, 0.0, 5.0, 5.0],
                  [3.0, 3.0, 5.0, 5.0]]).reshape(1, 4, 4, 1)
    layer = built(x.shape)
    y = layer.forward(dev(x))
    np.testing.assert_array_equal(host(y)[0, :, :, 0], [[1.0, 2.0], [3.0, 5.0]])
    dx = host(layer.backward(dev(np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 2, 2, 1))))[0, :, :, 0]
    np.testing.assert_array_equal(dx, [[10.0, 0.0, 0.0, 20.0],
                                       [0.0, 0.0, 0.0, 0.0],
                                       [30.0, 0.0, 40.0, 0.0],
                                       [0.0, 0.0, 0.0, 0.0]])


def test_overlapping_windows_add_up_on_a_shared_maximum():
    x = np.array([0.0, 9.0, 0.0, 0.0]).reshape(1, 1, 4, 1)  # windows [0, 9], [9, 0], [0, 0] with pool (1, 2), stride 1
    layer = built(x.shape, pool_size=(1, 2), strides=1)
    np.testing.assert_array_equal(host(layer.forward(dev(x))).ravel(), [9.0, 9.0, 0.0])
    dx = host(layer.backward(dev(np.array([1.0, 2.0, 4.0]).reshape(1, 1, 3, 1)))).ravel()
    np.testing.assert_array_equal(dx, [0.0, 3.0, 4.0, 0.0])  # 9 gets 1 + 2; the tie [0, 0] gives 4 to its first


@pytest.mark.parametrize("case", ["pool_valid", "pool_same_overlapping"])
def test_ties_and_gradients_match_keras(case):
    """Inputs of three values only, so most windows hold ties: Keras routes each gradient as tinynet does."""
    inputs, keras = KERAS[case]["inputs"], KERAS[case]["keras"]
    x = np.array(inputs["x"], "float32")
    layer = built(x.shape, **inputs["config"])
    y = layer.forward(dev(x))
    r = np.random.default_rng(7).standard_normal(y.shape).astype("float32")  # the r of the script
    np.testing.assert_array_equal(host(y), keras["y"])
    np.testing.assert_allclose(host(layer.backward(dev(r))), keras["dx"], rtol=1e-6, atol=1e-6)


def test_same_padding_never_picks_the_border():
    x = -np.ones((1, 3, 3, 1))  # all negative: a zero border would win, -inf does not
    layer = built(x.shape, pool_size=2, padding="same")
    y = layer.forward(dev(x))
    assert y.shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(host(y), -np.ones((1, 2, 2, 1)))
    # the border is after the image (bottom, right); each window's tie goes to its first pixel
    dx = host(layer.backward(dev(np.ones((1, 2, 2, 1)))))[0, :, :, 0]
    np.testing.assert_array_equal(dx, [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])


def test_training_flag_changes_nothing():
    x = dev(np.random.default_rng(0).standard_normal((2, 4, 4, 3)))
    layer = built((2, 4, 4, 3))
    np.testing.assert_array_equal(host(layer.forward(x, training=True)), host(layer.forward(x)))


@pytest.mark.host_only("configs and shapes")
def test_keras_defaults_alias_and_config():
    assert MaxPool2D is MaxPooling2D
    layer = MaxPool2D()
    assert layer.pool_size == (2, 2) and layer.strides == (2, 2) and layer.padding == "valid"  # strides = pool_size
    assert layer.compute_output_shape((None, 26, 26, 32)) == (None, 13, 13, 32)
    assert layer.compute_output_shape((None, 11, 11, 64)) == (None, 5, 5, 64)
    assert MaxPool2D(2, strides=2, padding="same").compute_output_shape((None, 7, 7, 8)) == (None, 4, 4, 8)
    config = MaxPooling2D((3, 2), strides=1, padding="same", name="p").get_config()
    assert config == {"name": "p", "trainable": True, "input_shape": None, "pool_size": [3, 2], "strides": [1, 1], "padding": "same"}
    assert MaxPooling2D.from_config(config).get_config() == config
    assert MaxPooling2D().count_params() == 0


@pytest.mark.host_only("argument checks")
def test_bad_arguments():
    with pytest.raises(ValueError, match=r"pool_size=\(3, 3\) is larger than its input of 2 x 5 pixels.*'same'"):
        MaxPooling2D(3, input_shape=(2, 5, 1))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same', got 'full'"):
        MaxPooling2D(padding="full")
    with pytest.raises(ValueError, match=r"x.reshape\(len\(x\), 28, 28, 1\)"):
        MaxPooling2D(input_shape=(784,))
    with pytest.raises(ValueError, match="pool_size"):
        MaxPooling2D(pool_size=(2, 2, 2))
    with pytest.raises(TypeError, match="strides"):
        MaxPooling2D(strides=1.5)
