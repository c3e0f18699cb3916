"""tinynet follows Keras step by step, given the same weights and batches.

keras_reference/keras_losses.json holds the per-step training losses of Keras
3.15.1 (TensorFlow-CPU 2.21) on the seed model, recorded by
keras_reference/make_keras_losses.py from the same initial weights and the same
unshuffled MNIST batches. Keras is not needed to run this test.
"""
import json
import sys
from pathlib import Path

import numpy as np

from conftest import mnist_dir
from tinynet.layers import Dense
from tinynet.models import Sequential

REFERENCE = Path(__file__).parent / "keras_reference"
sys.path.insert(0, str(REFERENCE))
import make_keras_losses as reference  # noqa: E402

STEPS = 100


def test_per_step_losses_follow_keras_to_float32_rounding(monkeypatch):
    monkeypatch.setenv("TINYNET_DATA_DIR", str(mnist_dir()))
    keras_losses = json.loads((REFERENCE / "keras_losses.json").read_text())["losses"][:STEPS]
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)),
                        Dense(512, activation="relu"), Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    model.set_weights(reference.initial_weights())
    ours = [model.train_on_batch(x, y)[0] for x, y in reference.batches()[:STEPS]]
    # The first steps agree bit for bit; then float32 rounding (a different BLAS
    # summation order) adds differences of a few 1e-7, relative.
    assert ours[0] == keras_losses[0]
    np.testing.assert_allclose(ours, keras_losses, rtol=1e-5)
