"""Tests for tinynet.optimizers.Adam, against Keras 3's own updates (keras_reference/make_keras_layers.py).

    m = beta_1 m + (1 - beta_1) g;   v = beta_2 v + (1 - beta_2) g**2
    w = w - alpha m / (sqrt(v) + epsilon),   alpha = lr sqrt(1 - beta_2**t) / (1 - beta_1**t)
"""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import dev, host
from tinynet import backend, optimizers
from tinynet.layers import Dense
from tinynet.models import Sequential
from tinynet.optimizers import Adam

KERAS = json.loads((Path(__file__).parent / "keras_reference" / "keras_layers.json").read_text())["adam"]


@pytest.mark.host_only("hyperparameters only: no arrays")
def test_defaults_config_and_name_are_keras():
    opt = Adam()
    assert (opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon, opt.amsgrad) == (0.001, 0.9, 0.999, 1e-7, False)
    config = Adam(learning_rate=0.01, beta_1=0.8, amsgrad=True).get_config()
    assert config == {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": True}
    assert Adam.from_config(config).get_config() == config
    assert type(optimizers.get("adam")) is Adam


def test_first_step_by_hand():
    w = dev([1.0, -2.0, 0.5])
    Adam().apply([dev([0.5, -1.0, 0.0])], [w])
    # t = 1: m = 0.1 g, v = 0.001 g**2, alpha = 0.001 sqrt(0.001) / 0.1, so the step is
    # alpha m / (sqrt(v) + eps) ~ 0.001 sign(g): Adam's first step is the learning rate, whatever |g|
    np.testing.assert_allclose(host(w), [1.0 - 0.001, -2.0 + 0.001, 0.5], rtol=1e-6)


@pytest.mark.parametrize("variant", ["adam", "amsgrad"])
def test_three_steps_match_keras(variant, backend_name):
    inputs = KERAS["inputs"]
    w, b = dev(inputs["w"]), dev(inputs["b"])
    opt = Adam(amsgrad=variant == "amsgrad")
    for (gw, gb), (keras_w, keras_b) in zip(inputs["grads"], KERAS["keras"][variant]):
        opt.apply([dev(gw), dev(gb)], [w, b])
        if backend_name == "numpy":  # the same float32 operations in the same order: bit for bit
            np.testing.assert_array_equal(host(w), np.array(keras_w, "float32"))
            np.testing.assert_array_equal(host(b), np.array(keras_b, "float32"))
        np.testing.assert_allclose(host(w), keras_w, rtol=1e-6)
        np.testing.assert_allclose(host(b), keras_b, rtol=1e-6)
    assert opt.iterations == 3


def test_state_is_m_and_v_per_parameter_and_counted_like_keras():
    w, b = dev(np.zeros((3, 4))), dev(np.zeros(4))
    opt = Adam()
    assert opt.count_params() == 0
    g = np.arange(12, dtype="float32").reshape(3, 4)
    opt.apply([dev(g), dev(np.ones(4))], [w, b])
    slot = host(opt.slots[0])
    assert slot.shape == (2, 3, 4) and opt.slots[0].dtype == backend.as_dtype("float32")
    np.testing.assert_allclose(slot[0], 0.1 * g, rtol=1e-6)  # m = (1 - beta_1) g
    np.testing.assert_allclose(slot[1], 0.001 * g * g, rtol=1e-6)  # v = (1 - beta_2) g**2
    assert opt.count_params() == 2 * (12 + 4) + 2  # m and v per weight, plus iterations and learning rate
    assert Adam(amsgrad=True).build_slot(w).shape == (3, 3, 4)  # and the largest v seen


def test_compile_by_name_and_train_a_model():
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    assert type(model.optimizer) is Adam
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)), np.eye(3)[rng.integers(0, 3, 32)]
    first = model.train_on_batch(x, y)
    for _ in range(30):
        last = model.train_on_batch(x, y)
    assert last < first and model.optimizer.iterations == 31


@pytest.mark.host_only("argument checks")
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(learning_rate=0), ValueError, "learning_rate"),
    (dict(beta_1=1.0), ValueError, r"beta_1 must be a number in \[0, 1\)"),
    (dict(beta_2=-0.1), ValueError, r"beta_2 must be a number in \[0, 1\)"),
    (dict(epsilon=0), ValueError, "epsilon must be a number above 0"),
    (dict(amsgrad="yes"), TypeError, "amsgrad must be True or False"),
    (dict(beta_1="0.9"), TypeError, "beta_1"),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        Adam(**kwargs)
