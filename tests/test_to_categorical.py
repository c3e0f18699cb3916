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


@pytest.mark.parametrize("labels, shown", [([0.5, 1.0], "0.5"), ([1.0, np.nan], "nan"), ([np.inf], "inf")])
def test_non_integer_labels(labels, shown):
    with pytest.raises(ValueError, match=rf"y must hold integer class labels such as 0\.\.9, got {shown}\."):
        to_categorical(labels)


def test_booleans_are_labels_0_and_1():
    np.testing.assert_array_equal(to_categorical([True, False]), [[0, 1], [1, 0]])


@pytest.mark.parametrize("labels", [[0, 10], [-1, 2]])
def test_labels_out_of_range(labels):
    with pytest.raises(ValueError, match=r"y must hold labels in 0\.\.9 for num_classes=10; got values from"):
        to_categorical(labels, 10)


def test_negative_labels_without_num_classes():
    with pytest.raises(ValueError, match=r"y must hold class labels 0, 1, 2, \.\.\.; got -1\."):
        to_categorical([-1, 0, 1])


@pytest.mark.parametrize("num_classes, error", [(0, ValueError), (-2, ValueError), (3.0, TypeError),
                                                ("3", TypeError), (True, TypeError)])
def test_num_classes_must_be_a_positive_integer(num_classes, error):
    # Keras refuses 3.0 too (numpy.zeros wants an int); it reads 0 as None, which hides the mistake.
    with pytest.raises(error, match=rf"num_classes must be an integer of at least 1, got {num_classes!r}\."):
        to_categorical([0, 1], num_classes=num_classes)


def test_num_classes_may_be_a_numpy_integer():
    assert to_categorical([0, 1], num_classes=np.int64(3)).shape == (2, 3)


@pytest.mark.parametrize("labels, dtype", [(["0", "1"], "<U1"), ([1 + 0j], "complex128"), ([0, None], "object")])
def test_labels_that_are_not_numbers(labels, dtype):
    with pytest.raises(TypeError, match=rf"y must hold integer class labels .*dtype {dtype}.*numpy.unique"):
        to_categorical(labels)


def test_ragged_labels():
    with pytest.raises(TypeError, match=r"y must be an array of integer class labels"):
        to_categorical([[0, 1], [2]])


def test_a_huge_label_is_refused_before_any_memory_is_taken():
    with pytest.raises(ValueError, match=r"labels in y go up to 1,000,000,000,000, so to_categorical would make "
                                         r"1,000,000,000,001 classes: an array of shape \(2, 1000000000001\) "
                                         r"that takes 14,901\.2 GiB\. Are these class numbers"):
        to_categorical([0, 10**12])
    with pytest.raises(ValueError, match=r"num_classes=1,000,000,000,000 would make .* GiB: is num_classes right"):
        to_categorical([0, 1], num_classes=10**12)


def test_many_classes_in_little_memory_still_work():
    out = to_categorical([0, 2 * 10**6])  # 2 rows of 2,000,001 classes: 32 MB
    assert out.shape == (2, 2 * 10**6 + 1)
    assert out[1, -1] == 1 and out.sum() == 2


@pytest.mark.host_only("host data only")
def test_applied_twice_gives_a_hint():
    once = to_categorical([0, 2, 1])
    with pytest.warns(UserWarning, match=r"^y looks one-hot already \(each row of 3 holds a single 1\): "
                                         r"to_categorical makes it \(3, 3, 2\), .*If y is one-hot, use it as it is"):
        twice = to_categorical(once)
    assert twice.shape == (3, 3, 2)  # still Keras's result: the warning only says what happened


@pytest.mark.host_only("host data only")
@pytest.mark.parametrize("y", [[[0, 1], [1, 1]], [[0, 2], [1, 0]], [[1], [0]], [[0, 0], [0, 0]]])
def test_labels_in_two_axes_that_are_not_one_hot_give_no_warning(y):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_categorical(y)
