"""The same seed and initial weights train the same way on every backend.

NumPy is the reference. ``strict`` runs the same array code through
array_api_strict (and RMSprop's readable reference instead of the compiled
kernel), so it must agree bit for bit; CuPy, when a GPU is usable, sums in a
different order inside its matrix products, so it agrees to float32 rounding.
"""
import numpy as np
import pytest

from conftest import BACKENDS_UNDER_TEST, mnist_dir
import tinynet
from tinynet import backend
from tinynet.datasets import mnist
from tinynet.layers import Dense
from tinynet.models import Sequential

OTHERS = [name for name in BACKENDS_UNDER_TEST if name != "numpy"]


def train(name, x, y, x_val, y_val, steps=100):
    """100 single steps (their losses), then one unshuffled epoch; on backend ``name``."""
    backend.set_backend(name)
    tinynet.utils.set_random_seed(0)  # the same initial weights: they are drawn on the host
    model = Sequential([Dense(512, activation="relu", input_shape=(784,)), Dense(512, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    initial = model.get_weights()
    losses = [model.train_on_batch(x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32])[0] for i in range(steps)]
    history = model.fit(x, y, epochs=1, shuffle=False, verbose=0, validation_data=(x_val, y_val))
    return initial, np.array(losses), history.history["val_accuracy"][0]


@pytest.mark.host_only("switches between NumPy and the other backends itself")
@pytest.mark.parametrize("other", OTHERS)
def test_losses_and_accuracy_agree_with_numpy(other):
    (x, y), (x_val, y_val) = mnist.load_data(mnist_dir())
    x, x_val = x[:12000].reshape(-1, 784) / 255, x_val.reshape(-1, 784) / 255
    y, y_val = tinynet.utils.to_categorical(y[:12000], 10), tinynet.utils.to_categorical(y_val, 10)
    w_numpy, losses_numpy, accuracy_numpy = train("numpy", x, y, x_val, y_val)
    w_other, losses_other, accuracy_other = train(other, x, y, x_val, y_val)
    for a, b in zip(w_numpy, w_other):
        np.testing.assert_array_equal(a, b)  # the same seed gives the same initial weights everywhere
    if other == "strict":
        np.testing.assert_array_equal(losses_other, losses_numpy)
    else:  # 100 steps later, still equal to float32 rounding
        np.testing.assert_allclose(losses_other, losses_numpy, rtol=1e-4)
    assert abs(accuracy_other - accuracy_numpy) <= 0.002  # within 0.2 points
    assert accuracy_numpy > 0.9
