"""Tests for tinynet.layers.Conv2D: im2col and one matrix product, checked against loops, gradients and Keras."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import dev, host
from tinynet import gradcheck
from tinynet.layers import Conv2D, Dense, Flatten, MaxPooling2D
from tinynet.models import Sequential
from tinynet.utils import set_random_seed

KERAS = json.loads((Path(__file__).parent / "keras_reference" / "keras_layers.json").read_text())


def built(x_shape, seed=0, **config):
    """A Conv2D built for inputs shaped like ``x_shape``, with a random (non-zero) bias."""
    set_random_seed(seed)
    layer = Conv2D(**config)
    layer.build((None, *x_shape[1:]))
    if layer.use_bias:
        kernel = layer.get_weights()[0]
        layer.set_weights([kernel, np.random.default_rng(seed).uniform(-0.5, 0.5, layer.filters)])
    return layer


def direct_convolution(x, kernel, bias, strides, padding):
    """The definition, by loops over every output pixel, in float64: y[n, oh, ow, f] =
    sum over i, j, c of x_padded[n, oh*sh + i, ow*sw + j, c] * kernel[i, j, c, f], plus bias[f]."""
    (kh, kw, _, filters), (sh, sw) = kernel.shape, strides
    n, h, w, _ = x.shape
    if padding == "same":
        ho, wo = math.ceil(h / sh), math.ceil(w / sw)
        ph, pw = max((ho - 1) * sh + kh - h, 0), max((wo - 1) * sw + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))  # odd pixel: bottom/right
    else:
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((n, ho, wo, filters))
    for oh in range(ho):
        for ow in range(wo):
            window = x[:, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw, :]  # (N, kh, kw, C)
            y[:, oh, ow, :] = np.tensordot(window, kernel, axes=3) + bias
    return y


CONFIGS = [  # (input shape, Conv2D arguments)
    ((2, 6, 5, 2), dict(filters=3, kernel_size=3)),
    ((2, 7, 5, 3), dict(filters=4, kernel_size=3, strides=2, padding="same")),  # odd sizes: the odd pixel at the end
    ((2, 7, 6, 2), dict(filters=2, kernel_size=(3, 2), strides=(2, 1), padding="same")),
    ((1, 5, 5, 1), dict(filters=2, kernel_size=4, strides=3, padding="same", use_bias=False)),
    ((2, 8, 8, 2), dict(filters=3, kernel_size=2, strides=2)),
]


@pytest.mark.parametrize("x_shape, config", CONFIGS)
def test_forward_matches_the_direct_convolution(x_shape, config):
    layer = built(x_shape, **config)
    x = np.random.default_rng(1).standard_normal(x_shape).astype("float32")
    weights = [w.astype("float64") for w in layer.get_weights()]
    expected = direct_convolution(x.astype("float64"), weights[0], weights[1] if layer.use_bias else 0.0,
                                  layer.strides, layer.padding)
    y = host(layer.forward(dev(x)))
    assert y.shape == expected.shape == layer.compute_output_shape(x_shape)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape, config", CONFIGS)
def test_gradcheck(x_shape, config):
    layer = built(x_shape, **config)
    x = np.random.default_rng(2).standard_normal(x_shape)
    report = gradcheck.check_layer(layer, x)
    assert report.ok, str(report)
    assert set(report.results) == {"x", "kernel"} | ({"bias"} if layer.use_bias else set())


def test_gradcheck_with_relu():
    layer = built((2, 6, 5, 2), filters=3, kernel_size=3, activation="relu")
    x = np.random.default_rng(3).standard_normal((2, 6, 5, 2))
    assert np.abs(host(layer.forward_linear(dev(x, "float64")))).min() > 1e-3  # away from ReLU's kink
    report = gradcheck.check_layer(layer, x)
    assert report.ok, str(report)


@pytest.mark.parametrize("case", ["conv_valid", "conv_same_stride2"])
def test_forward_and_gradients_match_keras(case):
    """Keras 3 (keras_reference/make_keras_layers.py): y, and the gradients of L = sum(y * r), from the same weights."""
    inputs, keras = KERAS[case]["inputs"], KERAS[case]["keras"]
    x = np.array(inputs["x"], "float32")
    layer = Conv2D(**inputs["config"])
    layer.build((None, *x.shape[1:]))
    layer.set_weights([inputs["kernel"], inputs["bias"]])
    y = layer.forward(dev(x))
    r = np.random.default_rng(7).standard_normal(y.shape).astype("float32")  # the r of the script
    dx = layer.backward(dev(r))
    np.testing.assert_allclose(host(y), keras["y"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(dx), keras["dx"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(layer.grads["kernel"]), keras["dkernel"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(layer.grads["bias"]), keras["dbias"], rtol=1e-5, atol=1e-6)


def test_keras_convnet_shapes_and_parameter_counts():
    """Keras's "Simple MNIST convnet": the same output shapes and 34,826 parameters."""
    model = Sequential([Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)),
                        MaxPooling2D(pool_size=(2, 2)), Conv2D(64, kernel_size=(3, 3), activation="relu"),
                        MaxPooling2D(pool_size=(2, 2)), Flatten(), Dense(10, activation="softmax")])
    assert [layer.output_shape for layer in model.layers] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 11, 11, 64), (None, 5, 5, 64), (None, 1600), (None, 10)]
    assert [layer.count_params() for layer in model.layers] == [320, 0, 18496, 0, 0, 16010]
    assert model.count_params() == 34826
    assert [layer.name for layer in model.layers[:2]] == ["conv2d", "max_pooling2d"]  # Keras's names
    assert model.predict(np.zeros((3, 28, 28, 1)), verbose=0).shape == (3, 10)


def test_initial_weights_are_keras_glorot_uniform_and_zeros():
    layer = Conv2D(64, 3)
    layer.build((None, 13, 13, 32))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 3, 32, 64) and bias.shape == (64,)  # Keras's order and shapes
    limit = math.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))  # fans count the receptive field, as Keras's
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.99 * limit
    assert kernel.dtype == np.float32 and not bias.any()


def test_first_layer_skips_the_input_gradient():
    layer = built((2, 6, 5, 2), filters=3, kernel_size=3)
    layer.needs_input_gradient = False
    y = layer.forward(dev(np.ones((2, 6, 5, 2))))
    assert layer.backward(y) is None and layer.grads["kernel"].shape == (3, 3, 2, 3)


def test_training_flag_changes_nothing():
    layer = built((2, 6, 5, 2), filters=3, kernel_size=3, activation="relu")
    x = dev(np.random.default_rng(0).standard_normal((2, 6, 5, 2)))
    np.testing.assert_array_equal(host(layer.forward(x, training=True)), host(layer.forward(x)))


@pytest.mark.host_only("configs only")
def test_config_round_trip():
    layer = Conv2D(8, (3, 2), strides=2, padding="SAME", activation="relu", use_bias=False, input_shape=(9, 9, 1),
                   name="c")
    config = layer.get_config()
    assert config == {"name": "c", "trainable": True, "input_shape": [9, 9, 1], "filters": 8, "kernel_size": [3, 2], "strides": [2, 2],
                      "padding": "same", "activation": "relu", "use_bias": False}
    again = Conv2D.from_config(config)
    assert again.get_config() == config and again.compute_output_shape((None, 9, 9, 1)) == (None, 5, 5, 8)


@pytest.mark.host_only("argument checks")
def test_kernel_larger_than_the_input():
    with pytest.raises(ValueError) as info:
        Conv2D(4, 5, input_shape=(4, 9, 1))
    message = str(info.value)
    assert "kernel_size=(5, 5)" in message and "4 x 9" in message and "padding='same'" in message
    assert Conv2D(4, 5, padding="same", input_shape=(4, 9, 1)).compute_output_shape((None, 4, 9, 1)) == (
        None, 4, 9, 4)  # 'same' pads, as in Keras


@pytest.mark.host_only("argument checks")
@pytest.mark.parametrize("padding", ["full", "causal", None, 1])
def test_unknown_padding(padding):
    with pytest.raises(ValueError) as info:
        Conv2D(4, 3, padding=padding)
    assert "padding must be 'valid' or 'same'" in str(info.value) and repr(padding) in str(info.value)


@pytest.mark.host_only("argument checks")
def test_flat_images_are_told_to_reshape():
    with pytest.raises(ValueError) as info:
        Conv2D(32, 3, input_shape=(784,))
    assert "(batch, height, width, channels)" in str(info.value)
    assert "x.reshape(len(x), 28, 28, 1)" in str(info.value)
    with pytest.raises(ValueError, match=r"x.reshape\(len\(x\), 28, 28, 1\)"):
        Conv2D(32, 3, input_shape=(28, 28))  # no channel axis
    with pytest.raises(ValueError, match=r"x.reshape\(len\(x\), 28, 28, 1\)"):
        Conv2D(32, 3)(np.zeros((5, 784), "float32"))  # built on first call: the same check, before any work


@pytest.mark.host_only("argument checks")
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(filters=0, kernel_size=3), ValueError, "filters"),
    (dict(filters=2.5, kernel_size=3), TypeError, "filters"),
    (dict(filters=2, kernel_size=(3,)), ValueError, "kernel_size"),
    (dict(filters=2, kernel_size=0), ValueError, "kernel_size"),
    (dict(filters=2, kernel_size=3, strides=(1, 0)), ValueError, "strides"),
    (dict(filters=2, kernel_size=3, activation="tanh"), ValueError, "activation"),
    (dict(filters=2, kernel_size=3, use_bias=1), TypeError, "use_bias"),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        Conv2D(**kwargs)


@pytest.mark.host_only("argument checks")
@pytest.mark.parametrize("shape", [(4, 784), (4, 28, 28)])
def test_a_convnet_given_flat_or_channelless_images_says_how_to_reshape(shape):
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)), Flatten(),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    for call in (lambda x: model.predict(x, verbose=0), lambda x: model.fit(x, np.eye(10)[:4], verbose=0)):
        with pytest.raises(ValueError, match=r"\(None, 28, 28, 1\).*x = x.reshape\(len\(x\), 28, 28, 1\)"):
            call(np.zeros(shape))


@pytest.mark.host_only("an error before any array")
def test_channels_first_images_are_told_to_move_their_channels_last():
    with pytest.raises(ValueError, match=r"look channels first.*x = x.transpose\(0, 2, 3, 1\)"):
        Conv2D(2, 3, input_shape=(1, 28, 28)).build((None, 1, 28, 28))
    Conv2D(2, (1, 3), input_shape=(1, 100, 16)).build((None, 1, 100, 16))  # a 1-pixel-tall image: not refused
