"""Tests for tinynet.initializers: glorot_uniform and zeros, by name or function."""
import math

import numpy as np
import pytest

from tinynet import initializers
from tinynet.utils import set_random_seed

pytestmark = pytest.mark.host_only("initialisers draw NumPy arrays on the host")


def test_get_by_name():
    assert initializers.get("glorot_uniform") is initializers.glorot_uniform
    assert initializers.get("zeros") is initializers.zeros


def test_get_a_function_returns_it():
    def ones(shape):
        return np.ones(shape)

    assert initializers.get(ones) is ones


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError) as info:
        initializers.get("he_normal")
    message = str(info.value)
    assert "'he_normal'" in message and "glorot_uniform" in message and "zeros" in message
    for identifier in (["zeros"], None, 3):  # unhashable or not a name: the same error, not NumPy's or Python's
        with pytest.raises(ValueError, match=r"^Unknown initializer .* Known: glorot_uniform, zeros, or a function "
                                             r"that takes a shape and returns an array of it\.$"):
            initializers.get(identifier)


@pytest.mark.parametrize("shape", [(784, 512), (3, 5), (1, 1)])
def test_glorot_uniform_bounds(shape):
    set_random_seed(0)
    w = initializers.glorot_uniform(shape)
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    assert w.shape == shape
    assert np.abs(w).max() <= limit


def test_glorot_uniform_fills_its_range():
    set_random_seed(0)
    w = initializers.glorot_uniform((300, 200))
    limit = math.sqrt(6.0 / 500)  # 0.10954
    assert w.min() < -0.99 * limit and w.max() > 0.99 * limit
    assert w.mean() == pytest.approx(0.0, abs=2e-3)
    assert w.var() == pytest.approx(limit**2 / 3, rel=0.02)  # = 2 / (fan_in + fan_out)


def test_glorot_uniform_is_reproducible_with_a_seed():
    set_random_seed(42)
    a = initializers.glorot_uniform((20, 10))
    b = initializers.glorot_uniform((20, 10))
    set_random_seed(42)
    np.testing.assert_array_equal(initializers.glorot_uniform((20, 10)), a)
    np.testing.assert_array_equal(initializers.glorot_uniform((20, 10)), b)
    assert not np.array_equal(a, b)  # successive draws differ
    set_random_seed(43)
    assert not np.array_equal(initializers.glorot_uniform((20, 10)), a)


def test_zeros():
    z = initializers.zeros((3, 2))
    assert z.shape == (3, 2)
    np.testing.assert_array_equal(z, 0.0)
