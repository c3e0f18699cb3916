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
    """The inverse of ``get``: ReLU() -> ``'relu'``, None -> ``'linear'``; an activation layer of your own ->
    ``{'class_name': 'Sigmoid', 'config': {...}}``, which ``load_model`` rebuilds as it does your own layers:
    from ``custom_objects={'Sigmoid': Sigmoid}``."""
    if activation is None:
        return "linear"
    names = {cls: name for name, cls in _ACTIVATIONS.items()}
    if type(activation) in names:
        return names[type(activation)]
    return {"class_name": type(activation).__name__, "config": activation.get_config()}
