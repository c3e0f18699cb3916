"""Tests for tinynet.metrics.Accuracy: categorical, sparse and binary, as Keras reads the targets."""
import numpy as np
import pytest

from conftest import dev
from tinynet import backend, metrics
from tinynet.metrics import Accuracy

P = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]], "float32")
LABELS = np.array([1, 0, 2, 0])  # right, right, right, wrong (predicted 1)


def test_categorical_one_hot_targets():
    y = np.eye(3, dtype="float32")[LABELS]
    value = Accuracy()(dev(y), dev(P))
    assert value.shape == () and value.dtype == backend.as_dtype("float32")  # a 0-d array on the device
    assert float(value) == 0.75


def test_sparse_integer_labels():
    assert float(Accuracy()(dev(LABELS, "int64"), dev(P))) == 0.75
    assert float(Accuracy()(dev(LABELS), dev(P))) == 0.75  # labels moved to the device as floats


def test_sparse_label_column():
    assert float(Accuracy()(dev(LABELS.reshape(4, 1), "int64"), dev(P))) == 0.75  # (N, 1) labels, as in keras


def test_binary_one_output_unit():
    p = np.array([[0.9], [0.2], [0.6], [0.4], [0.51]], "float32")
    y = np.array([1, 0, 0, 1, 1])
    assert float(Accuracy()(dev(y, "int64"), dev(p))) == pytest.approx(0.6)
    assert float(Accuracy()(dev(y.reshape(5, 1)), dev(p))) == pytest.approx(0.6)


@pytest.mark.parametrize("n_right", [0, 1, 4])
def test_fraction_of_right_answers(n_right):
    y = np.eye(3)[[1, 1, 1, 1]]
    p = np.eye(3)[[1] * n_right + [0] * (4 - n_right)]
    assert float(Accuracy()(dev(y, "float64"), dev(p, "float64"))) == n_right / 4


@pytest.mark.host_only("names to objects: no arrays")
def test_get_by_name():
    for name in ("accuracy", "acc"):
        metric = metrics.get(name)
        assert isinstance(metric, Accuracy) and metric.name == name  # the name keys the logs
    mine = Accuracy()
    assert metrics.get(mine) is mine
    by_class = metrics.get(Accuracy)  # the class, as optimizers and losses take theirs
    assert type(by_class) is Accuracy and by_class.name == "accuracy"


def test_compile_takes_the_metric_class():
    from tinynet.layers import Dense
    from tinynet.models import Sequential

    model = Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(loss="categorical_crossentropy", metrics=[Accuracy])
    loss, accuracy = model.evaluate(np.eye(3)[:2], np.eye(2), verbose=0)
    assert 0 <= accuracy <= 1 and [m.name for m in model.metrics] == ["accuracy"]


@pytest.mark.host_only("an error message: no arrays")
def test_unknown_metric_lists_known_ones():
    with pytest.raises(ValueError) as info:
        metrics.get("precision")
    assert "'precision'" in str(info.value) and "accuracy" in str(info.value)
    for identifier in ([Accuracy], int, None):
        with pytest.raises(ValueError, match=r"^Unknown metric .*Known: accuracy, acc, or a metric object such as "
                                             r"tinynet.metrics.Accuracy\(\)\.$"):
            metrics.get(identifier)
