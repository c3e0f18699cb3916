"""The random generator behind weight initialisation and shuffling.

tinynet draws every random number on the host from one NumPy generator, so a
seed gives the same initial weights and the same batch order on every backend.
"""
import random as _python_random

import numpy

from tinynet import arguments

_generator = numpy.random.default_rng()


def set_random_seed(seed):
    """Seed tinynet, NumPy's global generator and Python's ``random``.

    After ``set_random_seed(s)`` a CPU run repeats exactly: same initial
    weights, same batch order, same results (like ``keras.utils.set_random_seed``).
    """
    global _generator
    seed = arguments.integer(seed, "seed", minimum=0, maximum=2**32 - 1)  # numpy.random.seed's range
    _generator = numpy.random.default_rng(seed)
    numpy.random.seed(seed)
    _python_random.seed(seed)


def generator():
    """The ``numpy.random.Generator`` tinynet draws from."""
    return _generator
