"""Tests for tinynet.utils.set_random_seed: one seed for tinynet, NumPy and Python."""
import random

import numpy as np
import pytest

from tinynet.utils import random as tinynet_random
from tinynet.utils import set_random_seed

pytestmark = pytest.mark.host_only("seeding works on host generators only")


def draws():
    return (tinynet_random.generator().uniform(size=5), np.random.rand(5), [random.random() for _ in range(5)])


def test_same_seed_same_draws():
    set_random_seed(123)
    first = draws()
    set_random_seed(123)
    second = draws()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_different_seed_different_draws():
    set_random_seed(1)
    first = draws()
    set_random_seed(2)
    second = draws()
    for a, b in zip(first, second):
        assert not np.array_equal(a, b)


def test_tinynet_generator_is_numpy_default_rng():
    set_random_seed(7)
    gen = tinynet_random.generator()
    assert isinstance(gen, np.random.Generator)
    np.testing.assert_array_equal(gen.permutation(10), np.random.default_rng(7).permutation(10))


def test_numpy_global_generator_is_seeded():
    set_random_seed(7)
    a = np.random.standard_normal(3)
    np.random.seed(7)
    np.testing.assert_array_equal(a, np.random.standard_normal(3))


def test_python_random_is_seeded():
    set_random_seed(7)
    a = random.random()
    random.seed(7)
    assert a == random.random()


@pytest.mark.parametrize("seed", ["1", 1.5, 2.0, None, True, [1]])
def test_non_int_seed_is_a_type_error(seed):
    with pytest.raises(TypeError, match="^seed must be an integer from 0 to 4294967295, got "):
        set_random_seed(seed)


@pytest.mark.parametrize("seed", [-5, -1, 2**32, 10**30])
def test_a_seed_out_of_range_is_a_value_error_naming_seed(seed):
    with pytest.raises(ValueError, match=rf"^seed must be an integer from 0 to 4294967295, got {seed}\."):
        set_random_seed(seed)


def test_a_numpy_integer_seed_is_taken_like_an_int():
    set_random_seed(np.int64(3))  # as every integer argument takes them
    first = draws()
    set_random_seed(3)
    for a, b in zip(first, draws()):
        np.testing.assert_array_equal(a, b)


def test_the_largest_seed_works():
    set_random_seed(2**32 - 1)
    first = draws()
    set_random_seed(2**32 - 1)
    np.testing.assert_array_equal(first[0], draws()[0])
