"""How a layer's parameters start: Keras's default initialisers, drawn on the host from tinynet's seeded
generator (``tinynet.utils.set_random_seed``), so a seed gives the same initial weights on every backend."""
import math

import numpy

from tinynet.utils import random


def glorot_uniform(shape):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010). As Keras counts
    them: a Dense kernel (in, units) has fan_in = in, fan_out = units; a Conv2D kernel (kh, kw, in, filters)
    has fan_in = kh*kw*in and fan_out = kh*kw*filters (each input pixel reaches kh*kw outputs per filter)."""
    receptive_field = math.prod(shape[:-2])  # kh * kw for a Conv2D kernel, 1 for a Dense one
    fan_in, fan_out = shape[-2] * receptive_field, shape[-1] * receptive_field
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return random.generator().uniform(-limit, limit, size=shape)


def zeros(shape):
    return numpy.zeros(shape)


_INITIALIZERS = {"glorot_uniform": glorot_uniform, "zeros": zeros}


def get(identifier):
    """An initialiser from its Keras name (``'glorot_uniform'``, ``'zeros'``) or a function of the shape
    (``Dense.build`` checks what it returns)."""
    if callable(identifier):
        return identifier
    if not isinstance(identifier, str) or identifier not in _INITIALIZERS:  # a list, say, is no name
        raise ValueError(f"Unknown initializer {identifier!r}. Known: {', '.join(_INITIALIZERS)}, or a function "
                         "that takes a shape and returns an array of it.")
    return _INITIALIZERS[identifier]
