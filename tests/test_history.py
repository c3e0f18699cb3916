"""Tests for tinynet.callbacks.History: per-epoch logs, as keras.callbacks.History keeps them."""
import pytest

from tinynet.callbacks import History

pytestmark = pytest.mark.host_only("History holds Python floats only")


def test_starts_empty():
    history = History()
    assert history.history == {} and history.epoch == [] and history.params == {}


def test_append_collects_each_metric_per_epoch():
    history = History(params={"epochs": 2, "steps": 10, "verbose": 1})
    history.append(0, {"accuracy": 0.8, "loss": 0.6, "val_accuracy": 0.85, "val_loss": 0.5})
    history.append(1, {"accuracy": 0.9, "loss": 0.3, "val_accuracy": 0.88, "val_loss": 0.4})
    assert history.history == {"accuracy": [0.8, 0.9], "loss": [0.6, 0.3],
                               "val_accuracy": [0.85, 0.88], "val_loss": [0.5, 0.4]}
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]  # insertion order
    assert history.epoch == [0, 1]
    assert history.params["epochs"] == 2


def test_repr():
    history = History()
    history.append(0, {"loss": 1.0})
    assert repr(history) == "<History epochs=1 keys=['loss']>"
