"""Tests for tinynet.utils.to_categorical: integer labels to one-hot rows."""
import numpy as np
import pytest

from tinynet.utils import to_categorical

pytestmark = pytest.mark.host_only("to_categorical returns NumPy arrays on the host")


def test_docstring_example():
    out = to_categorical([1, 0, 2])
    np.testing.assert_array_equal(out, [[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert out.dtype == np.float64  # as Keras returns it


def test_num_classes():
    out = to_categorical(np.array([3, 0]), num_classes=10)
    assert out.shape == (2, 10)
    np.testing.assert_array_equal(out.argmax(axis=1), [3, 0])
    np.testing.assert_array_equal(out.sum(axis=1), [1.0, 1.0])


def test_mnist_like_labels():
    labels = np.random.default_rng(0).integers(0, 10, 1000).astype("uint8")
    out = to_categorical(labels, 10)
    assert out.shape == (1000, 10)
    np.testing.assert_array_equal(out.argmax(axis=1), labels)
    assert out.sum() == 1000


def test_a_column_of_labels():
    np.testing.assert_array_equal(to_categorical(np.array([[2], [0]]), 3), [[0, 0, 1], [1, 0, 0]])


def test_float_labels_that_are_whole_numbers():
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


def test_higher_rank_labels_keep_their_shape():
    out = to_categorical(np.array([[0, 1], [2, 1]]), 3)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[1, 0], [0, 0, 1])


def test_empty():
    assert to_categorical(np.array([], dtype=int), 4).shape == (0, 4)


def test_non_integer_labels():
    with pytest.raises(ValueError, match="integer class labels"):
        to_categorical([0.5, 1.0])


@pytest.mark.parametrize("labels", [[0, 10], [-1, 2]])
def test_labels_out_of_range(labels):
    with pytest.raises(ValueError, match=r"0\.\.9 for num_classes=10"):
        to_categorical(labels, 10)
