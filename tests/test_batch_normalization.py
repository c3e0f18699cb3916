"""Tests for tinynet.layers.BatchNormalization: batch statistics in training, moving ones at inference."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import dev, host
from tinynet import gradcheck
from tinynet.layers import BatchNormalization, Conv2D, Dense, Flatten
from tinynet.models import Sequential

KERAS = json.loads((Path(__file__).parent / "keras_reference" / "keras_layers.json").read_text())["batch_normalization"]
INPUTS = KERAS["inputs"]
WEIGHT_NAMES = ["gamma", "beta", "moving_mean", "moving_variance"]


def from_keras_inputs():
    """The layer and x of keras_reference: momentum 0.9, gamma, beta and moving statistics away from 1 and 0."""
    x = np.array(INPUTS["x"], "float32")
    layer = BatchNormalization(**INPUTS["config"])
    layer.build((None, *x.shape[1:]))
    layer.set_weights([INPUTS[name] for name in WEIGHT_NAMES])
    return layer, x


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_one_step_matches_keras(mode):
    """Keras 3 (keras_reference/make_keras_layers.py): y, dL/dx, dL/dgamma, dL/dbeta and the moving statistics."""
    layer, x = from_keras_inputs()
    keras = KERAS["keras"][mode]
    y = layer.forward(dev(x), training=mode == "training")
    r = np.random.default_rng(7).standard_normal(y.shape).astype("float32")  # the r of the script
    dx = layer.backward(dev(r))
    for name, ours in [("y", y), ("dx", dx), ("dgamma", layer.grads["gamma"]), ("dbeta", layer.grads["beta"]),
                       ("moving_mean", layer.non_trainable["moving_mean"]),
                       ("moving_variance", layer.non_trainable["moving_variance"])]:
        np.testing.assert_allclose(host(ours), keras[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_training_uses_the_batch_and_updates_the_moving_statistics():
    layer, x = from_keras_inputs()
    y = host(layer.forward(dev(x), training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), INPUTS["beta"], atol=1e-5)  # x_hat has mean 0 per channel...
    x_hat = (y - INPUTS["beta"]) / INPUTS["gamma"]
    np.testing.assert_allclose(x_hat.var(axis=(0, 1, 2)), x.var(axis=(0, 1, 2)) / (x.var(axis=(0, 1, 2)) + 1e-3),
                               rtol=1e-4)  # ...and variance var / (var + eps)
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))  # divided by n, as Keras
    np.testing.assert_allclose(host(layer.non_trainable["moving_mean"]),
                               0.9 * np.array(INPUTS["moving_mean"]) + 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(host(layer.non_trainable["moving_variance"]),
                               0.9 * np.array(INPUTS["moving_variance"]) + 0.1 * variance, rtol=1e-5)


def test_inference_uses_the_moving_statistics_and_changes_nothing():
    layer, x = from_keras_inputs()
    before = layer.get_weights()
    y = host(layer.forward(dev(x)))  # training=False: predict and evaluate
    g, b, m, v = (np.array(INPUTS[name]) for name in WEIGHT_NAMES)
    np.testing.assert_allclose(y, g * (x - m) / np.sqrt(v + 1e-3) + b, rtol=1e-5, atol=1e-6)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(host(layer.forward(dev(x[:1]))), y[:1])  # a sample alone: the same prediction


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 2, 3, 2), (5, 3)])
def test_gradcheck(training, shape):
    layer = BatchNormalization()
    layer.build((None, *shape[1:]))
    rng = np.random.default_rng(0)
    channels = shape[-1]
    layer.set_weights([rng.uniform(0.5, 2, channels), rng.standard_normal(channels), rng.standard_normal(channels),
                       rng.uniform(0.5, 2, channels)])
    x = 2 * rng.standard_normal(shape) + 1
    report = gradcheck.check_layer(layer, x, training=training)
    assert report.ok, str(report)
    assert set(report.results) == {"x", "gamma", "beta"}  # the moving statistics have no gradient


def test_weights_in_keras_order_and_counted():
    layer = BatchNormalization()
    layer.build((None, 7, 7, 32))
    assert list(layer.params) == ["gamma", "beta"]  # trained by the optimizer
    assert list(layer.non_trainable) == ["moving_mean", "moving_variance"]  # updated by forward
    assert list(layer.weights) == WEIGHT_NAMES  # Keras's order
    gamma, beta, mean, variance = layer.get_weights()
    np.testing.assert_array_equal(gamma, np.ones(32))
    np.testing.assert_array_equal(variance, np.ones(32))
    assert not beta.any() and not mean.any() and gamma.dtype == np.float32
    assert layer.count_params() == 128  # Keras: 4 * channels, 64 of them non-trainable
    layer.set_weights([np.full(32, k, "float32") for k in (1, 2, 3, 4)])
    assert [float(w[0]) for w in layer.get_weights()] == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="4 weight arrays"):
        layer.set_weights(layer.get_weights()[:2])


def test_in_a_model_after_conv2d_and_dense():
    model = Sequential([Conv2D(8, 3, padding="same", input_shape=(6, 6, 1)), BatchNormalization(), Flatten(),
                        Dense(4), BatchNormalization()])
    assert [layer.output_shape for layer in model.layers] == [
        (None, 6, 6, 8), (None, 6, 6, 8), (None, 288), (None, 4), (None, 4)]
    assert model.count_params() == 80 + 32 + 1156 + 16
    assert model.layers[1].name == "batch_normalization"
    assert model.predict(np.ones((2, 6, 6, 1)), verbose=0).shape == (2, 4)


@pytest.mark.host_only("configs and argument checks")
def test_config_and_bad_arguments():
    layer = BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")
    assert layer.get_config() == {"name": "bn", "trainable": True, "input_shape": None, "momentum": 0.9, "epsilon": 1e-5}
    assert BatchNormalization.from_config(layer.get_config()).get_config() == layer.get_config()
    assert (BatchNormalization().momentum, BatchNormalization().epsilon) == (0.99, 1e-3)  # Keras's defaults
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\]"):
        BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon must be a number above 0"):
        BatchNormalization(epsilon=0)
    with pytest.raises(TypeError, match="momentum"):
        BatchNormalization(momentum="0.9")


def test_a_frozen_batch_normalization_moves_none_of_its_weights_as_in_keras():
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 4), dtype="float32"), np.eye(3, dtype="float32")[rng.integers(0, 3, 32)]
    model = Sequential([Dense(3, input_shape=(4,)), BatchNormalization(trainable=False),
                        Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    before = model.layers[1].get_weights()
    model.fit(x, y, batch_size=8, verbose=0)
    for a, b in zip(before, model.layers[1].get_weights()):  # gamma, beta, moving_mean, moving_variance
        np.testing.assert_array_equal(a, b)


def test_a_negative_moving_variance_is_refused():
    layer = BatchNormalization()
    layer.build((None, 2))
    with pytest.raises(ValueError, match="moving_variance holds negative numbers"):
        layer.set_weights([np.ones(2), np.zeros(2), np.zeros(2), np.array([1.0, -1.0])])
    np.testing.assert_array_equal(layer.get_weights()[3], [1.0, 1.0])  # unchanged
