"""tinynet/metrics/running_means.py: the loss and metrics of an epoch summed on the device, read on the host."""
import numpy as np
import pytest

from tinynet import backend
from tinynet.metrics import Accuracy
from tinynet.metrics.running_means import RunningMeans
from conftest import dev


def batch(n, right):
    """n one-hot targets of class 0, and predictions right for the first ``right`` of them."""
    y = np.zeros((n, 3), "float32")
    y[:, 0] = 1
    y_hat = np.zeros((n, 3), "float32")
    y_hat[:right, 0] = y_hat[right:, 1] = 1
    return dev(y), dev(y_hat)


def test_the_means_are_over_samples_as_keras_weighs_them():
    means = RunningMeans([Accuracy()])
    means.add(backend.to_device(2.0)[()], *batch(4, right=4))
    means.add(backend.to_device(5.0)[()], *batch(2, right=0))  # a smaller last batch counts for its 2 samples
    assert means.read() == pytest.approx({"accuracy": 4 / 6, "loss": (2 * 4 + 5 * 2) / 6})
    assert list(means.read()) == ["accuracy", "loss"] and means.first_non_finite() is None
    means.reset()
    means.add(backend.to_device(1.0)[()], *batch(3, right=3))
    assert means.read() == {"accuracy": 1.0, "loss": 1.0}


def test_the_first_non_finite_loss_is_noted_with_its_batch_and_kept():
    means = RunningMeans([])
    for loss in (1.0, 2.0, float("inf"), float("nan"), 3.0):
        means.add(backend.to_device(loss)[()], *batch(2, right=2))
    assert means.first_non_finite() == (2, float("inf"))  # batch 2 (0-based), the first bad one; not batch 3
    means.reset()
    assert means.first_non_finite() is None


def test_add_writes_in_place_so_that_a_recorded_step_adds_into_the_same_arrays():
    means = RunningMeans([Accuracy()])
    arrays = [*means.totals.values(), means.samples, means.batches, means.first_bad, means.bad_loss]
    means.add(backend.to_device(1.0)[()], *batch(2, right=1))
    means.reset()
    assert all(a is b for a, b in zip(arrays, [*means.totals.values(), means.samples, means.batches,
                                               means.first_bad, means.bad_loss]))
