"""Checks of the arguments a user passes: each turns a mistake into a clear error
that names the argument and says what is expected, before any work starts."""
import math
import numbers


def integer(value, name, minimum=1):
    """``value`` as a Python int of at least ``minimum`` (NumPy integers welcome, bools not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}.")
    return int(value)


def real(value, name, expected, ok):
    """``value`` as a Python float, when ``ok(value)``; ``expected`` says what is allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {value!r}.")
    if math.isnan(value) or not ok(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}.")
    return float(value)


def one_of(value, name, allowed):
    """``value`` itself, when it is one of ``allowed`` (strings or integers)."""
    if isinstance(value, (str, numbers.Integral)) and value in allowed:
        return value
    raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")


def flag(value, name):
    """``value`` as a bool: True or False (NumPy's too), not 1 or 'yes'."""
    if type(value).__name__ not in ("bool", "bool_"):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def shape(value, name):
    """A shape without its batch axis, such as ``(784,)``, as a tuple of positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        raise TypeError(f"{name} must be a tuple, one entry per axis: {name}=({value},), not {name}={value}.")
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{name} must be a tuple such as (784,), got {value!r}.")
    return tuple(integer(n, f"each entry of {name}") for n in value)
