"""Activations by name, as ``Dense(..., activation='relu')`` takes them: layers without parameters (``ReLU``,
``Softmax``) that Dense runs after its linear part. Each caches its input for the backward pass, so each Dense
needs its own: ``get`` copies an object, and one ``ReLU()`` can serve several layers (as in Keras)."""
import copy

from tinynet import arguments
from tinynet.layers.layer import Layer
from tinynet.layers.relu import ReLU
from tinynet.layers.softmax import Softmax

_ACTIVATIONS = {"relu": ReLU, "softmax": Softmax}


def get(identifier):
    """``'relu'`` -> ReLU(); ``'softmax'`` -> Softmax(); None or ``'linear'`` -> None; a layer -> a copy."""
    if identifier is None or isinstance(identifier, str) and identifier == "linear":
        return None
    if isinstance(identifier, Layer):
        return copy.deepcopy(identifier)
    return arguments.by_name(identifier, _ACTIVATIONS, Layer, "activation",
                             "'linear' (or None), or a layer object such as tinynet.layers.ReLU()")


def serialize(activation):
    """The name of an activation, the inverse of ``get``: ReLU() -> ``'relu'``, None -> ``'linear'``."""
    names = {cls: name for name, cls in _ACTIVATIONS.items()}
    if activation is not None and type(activation) not in names:
        raise ValueError(f"Cannot name the activation {activation!r}: only {', '.join(_ACTIVATIONS)} "
                         "and 'linear' can be saved by name.")
    return "linear" if activation is None else names[type(activation)]
