"""The argument checks: each names the argument and what it expects."""
import numpy as np
import pytest

from tinynet import arguments

pytestmark = pytest.mark.host_only("argument checks: no arrays")


def test_integer_takes_python_and_numpy_integers():
    assert arguments.integer(3, "n") == 3 and type(arguments.integer(np.int64(3), "n")) is int
    assert arguments.integer(0, "epochs", minimum=0) == 0


@pytest.mark.parametrize("value, error", [(True, TypeError), (2.0, TypeError), ("2", TypeError), (None, TypeError),
                                          (0, ValueError), (-3, ValueError)])
def test_integer_refuses(value, error):
    with pytest.raises(error, match=r"^batch_size must be an integer of at least 1, got "):
        arguments.integer(value, "batch_size")


def test_integer_with_a_maximum():
    assert arguments.integer(np.uint32(2**32 - 1), "seed", minimum=0, maximum=2**32 - 1) == 2**32 - 1
    for value, error in [(2**32, ValueError), (-1, ValueError), (np.bool_(True), TypeError)]:
        with pytest.raises(error, match=r"^seed must be an integer from 0 to 4294967295, got "):
            arguments.integer(value, "seed", minimum=0, maximum=2**32 - 1)


def test_positive_float32():
    assert arguments.positive_float32(np.float64(1e-7), "epsilon", "1e-7") == 1e-7
    tiny, huge = float(np.finfo(np.float32).smallest_normal), float(np.finfo(np.float32).max)
    assert arguments.positive_float32(tiny, "epsilon", "1e-7") == tiny
    assert arguments.positive_float32(huge, "epsilon", "1e-7") == huge
    for value, error, becomes in [(1e-50, ValueError, "0"), (tiny / 2, ValueError, "0"), (1e39, ValueError, "inf"),
                                  (np.float64(1e300), ValueError, "inf")]:
        with pytest.raises(error, match=rf"^epsilon must be a number above 0 that float32 .* from 1.2e-38 to "
                                        rf"3.4e\+38, such as 1e-7; got .*, which is {becomes} in float32\.$"):
            arguments.positive_float32(value, "epsilon", "1e-7")
    for value, error in [(0.0, ValueError), (-1.0, ValueError), (float("inf"), ValueError), ("fast", TypeError),
                         (np.True_, TypeError)]:
        with pytest.raises(error, match=r"^epsilon must be a number above 0, such as 1e-7, got "):
            arguments.positive_float32(value, "epsilon", "1e-7")


def test_real():
    assert arguments.real(np.float32(0.5), "rho", "a number in [0, 1)", lambda r: 0 <= r < 1) == 0.5
    for value, error in [("fast", TypeError), (False, TypeError), (float("nan"), ValueError), (1.0, ValueError)]:
        with pytest.raises(error, match=r"^rho must be a number in \[0, 1\), got "):
            arguments.real(value, "rho", "a number in [0, 1)", lambda r: 0 <= r < 1)


def test_one_of():
    assert arguments.one_of("auto", "verbose", ("auto", 0, 1, 2)) == "auto"
    assert arguments.one_of(np.int64(2), "verbose", ("auto", 0, 1, 2)) == 2
    for value in ("yes", 1.0, [1], None):
        with pytest.raises(ValueError, match="^verbose must be one of 'auto', 0, 1, 2, got "):
            arguments.one_of(value, "verbose", ("auto", 0, 1, 2))


def test_shape():
    assert arguments.shape([28, np.int64(28)], "input_shape") == (28, 28)
    with pytest.raises(TypeError, match=r"input_shape=\(784,\), not input_shape=784"):
        arguments.shape(784, "input_shape")


@pytest.mark.parametrize("value, fix", [((None, 784), r"input_shape=\(784,\), not input_shape=\(None, 784\)"),
                                        ([None, 28, 28], r"input_shape=\(28, 28\), not input_shape=\(None, 28, 28\)")])
def test_shape_with_the_batch_axis_says_to_leave_it_out(value, fix):
    with pytest.raises(ValueError, match=rf"^input_shape leaves out the batch axis: {fix} \(a model takes batches"):
        arguments.shape(value, "input_shape")


def test_flag():
    assert arguments.flag(np.bool_(True), "use_bias") is True
    assert arguments.flag(np.False_, "shuffle") is False  # as a comparison of NumPy arrays gives it
    for value in (1, "yes", None):
        with pytest.raises(TypeError, match="^use_bias must be True or False, got "):
            arguments.flag(value, "use_bias")


def test_array_of_numbers_lets_a_cupy_array_without_array_namespace_through(fake_cupy):
    from tinynet import backend

    backend.set_backend("cupy")  # the fake
    x = fake_cupy.ndarray(np.ones((2, 3)))  # as CuPy's: no __array_namespace__, no implicit NumPy conversion
    assert arguments.array_of_numbers(x, "x") is x  # checked and moved by to_device, never through np.asarray
    assert type(arguments.array_of_numbers([[1, 2]], "x")) is np.ndarray  # host data becomes NumPy
