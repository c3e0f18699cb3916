"""The one place where tinynet meets NumPy or CuPy.

Every layer, loss, optimizer and the training loop get their array functions
from ``xp()`` (the active *array namespace*) instead of importing numpy, so the
same code runs on the CPU (NumPy) or on a GPU (CuPy).

The host/device boundary is explicit and lives here too:

- ``to_device(x)`` moves a NumPy array onto the active backend (float32 by
  default); ``fit`` calls it once per call, not once per step.
- ``to_numpy(x)`` brings a result back to the host; ``predict``,
  ``evaluate``, ``History`` and ``get_weights`` always hand back NumPy.
"""
import numpy

_BACKENDS = ("numpy",)
_name = "numpy"
_xp = numpy

floatx = "float32"  # the default dtype of parameters and activations, as in Keras


def set_backend(name):
    """Select the array library: ``'numpy'`` (the CPU)."""
    global _name, _xp
    if name not in _BACKENDS:
        raise ValueError(f"Unknown backend {name!r}. Known backends: {', '.join(_BACKENDS)}.")
    _name, _xp = name, numpy


def get_backend():
    """The name of the active backend."""
    return _name


def xp():
    """The active array namespace (the ``numpy`` module, or ``cupy``)."""
    return _xp


def to_device(x, dtype=floatx):
    """Copy host data (a NumPy array or anything array-like) to the backend."""
    return _xp.asarray(numpy.asarray(x), dtype=dtype)


def to_numpy(x):
    """Copy a backend array back to a NumPy array on the host."""
    return numpy.array(x)  # a copy even on NumPy, so get_weights() never aliases the live parameters
