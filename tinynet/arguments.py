"""Checks of the arguments a user passes: each turns a mistake into a clear error
that names the argument and says what is expected, before any work starts."""
import math
import numbers
import unicodedata

import array_api_compat
import numpy

from tinynet import backend


def integer(value, name, minimum=1, maximum=None):
    """``value`` as a Python int from ``minimum`` to ``maximum`` (None: no limit). The one test of what counts
    as an integer: Python's and NumPy's integers do (numpy.int64(3)), bools and floats (2.0) do not."""
    expected = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer {expected}, got {value!r}.")
    if value < minimum or maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer {expected}, got {value!r}.")
    return int(value)


def real(value, name, expected, ok):
    """``value`` as a Python float, when ``ok(value)``; ``expected`` says what is allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {value!r}.")
    if not math.isfinite(value) or not ok(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}.")
    return float(value)


FLOAT32_RANGE = float(numpy.finfo(numpy.float32).smallest_normal), float(numpy.finfo(numpy.float32).max)


def positive_float32(value, name, example):
    """``value`` as a Python float above 0 that float32, the weights' dtype, holds as a normal number (1.2e-38
    to 3.4e38). Outside that range float32 rounds it to 0 or to inf, or to a subnormal number that the step
    flushes to 0 (rmsprop.py): a learning rate or epsilon that silently does nothing, or makes NaN."""
    expected = f"a number above 0, such as {example}"
    value = real(value, name, expected, lambda v: v > 0)
    low, high = FLOAT32_RANGE
    if not low <= value <= high:
        raise ValueError(f"{name} must be a number above 0 that float32 (the weights' dtype) holds, from "
                         f"{low:.2g} to {high:.2g}, such as {example}; got {value!r}, which is "
                         f"{'inf' if value > high else '0'} in float32.")
    return value


def one_of(value, name, allowed):
    """``value`` itself, when it is one of ``allowed`` (strings or integers)."""
    if isinstance(value, (str, numbers.Integral)) and value in allowed:
        return value
    raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")


def flag(value, name):
    """``value`` as a bool: True or False (NumPy's too: numpy.False_), not 1 or 'yes'. The one test of what
    counts as a bool, for every on/off argument (use_bias, from_logits, nesterov, shuffle, trainable)."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def by_name(identifier, known, base, what, example):
    """An object from a Keras name in ``known`` ('rmsprop' -> RMSprop()), from a class (RMSprop ->
    RMSprop()), or the object itself (an instance of ``base``); else a ValueError listing the names.
    The one test of what counts as a class or an object, for optimizers, losses, metrics and activations."""
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, base):
        try:
            return identifier()
        except TypeError as error:  # a class whose constructor needs arguments, such as Dense (units)
            raise TypeError(f"The {what} {identifier.__name__} cannot be made without arguments ({error}); "
                            f"pass an object instead, e.g. {identifier.__name__}(...).") from None
    if isinstance(identifier, str) and identifier in known:
        return known[identifier]()
    raise ValueError(f"Unknown {what} {identifier!r}. Known: {', '.join(known)}, or {example}.")


def array_of_numbers(data, where):
    """``data`` as an array of real numbers: lists become NumPy arrays, arrays (NumPy's or the
    backend's) pass through; anything else is a TypeError that starts with ``where``."""
    try:
        array = data if backend.is_backend_array(data) else numpy.asarray(data)
    except (TypeError, ValueError) as error:  # ragged lists, for one
        raise TypeError(f"{where}: expected an array of numbers ({error}).") from None
    if array.dtype == object and array.ndim == 0:  # None, a generator, any other object
        raise TypeError(f"{where}: expected an array of numbers, got {type(data).__name__}.")
    if not is_dtype(array, ("bool", "integral", "real floating")):
        raise TypeError(f"{where}: expected numbers, got an array of dtype {array.dtype}.")
    return array


def is_dtype(array, kind):
    """Whether ``array``'s dtype is of ``kind`` ('integral', ('bool', 'real floating'), ...), whatever its library."""
    xp = numpy if isinstance(array.dtype, numpy.dtype) else array_api_compat.array_namespace(array)  # NumPy, CuPy
    return xp.isdtype(array.dtype, kind)


def shape(value, name):
    """A shape without its batch axis, such as ``(784,)``, as a tuple of positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{name} must be a tuple, one entry per axis: {name}=({value},), not {name}={value}.")
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{name} must be a tuple such as (784,), got {value!r}.")
    if value[0] is None:  # Keras's printed shapes start with it, (None, 784); input_shape does not
        rest = tuple(value[1:])
        raise ValueError(f"{name} leaves out the batch axis: {name}={rest!r}, not {name}={tuple(value)!r} "
                         "(a model takes batches of any size).")
    return tuple(integer(n, f"each entry of {name}") for n in value)


MAX_NAME = 255  # characters in a layer's name: plenty for any name, far below what a zip entry can hold


def layer_name(value, name="name"):
    """``value`` as a layer's name: it also names the layer's weights in a saved file ('hidden/kernel'), so
    it may not hold '/' or '\\' (folders in the file), control characters such as NUL, or be very long."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string such as 'hidden_1', got {value!r}.")
    bad = [c for c in value if c in "/\\" or unicodedata.category(c) in ("Cc", "Cs")]  # Cs: not UTF-8
    if not value or bad or len(value) > MAX_NAME:
        why = (f"{len(value):,} characters, more than {MAX_NAME}" if len(value) > MAX_NAME else
               f"it holds {bad[0]!r}" if bad else "it is empty")
        raise ValueError(f"{name} must be 1 to {MAX_NAME} characters without '/', '\\' or control characters "
                         f"(it names the layer's weights in a saved file), such as 'hidden_1': {why}.")
    return value
