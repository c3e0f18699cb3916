"""Activations by name, as ``Dense(..., activation='relu')`` takes them: layers without weights (``ReLU``,
``Softmax``) that Dense runs after its linear part, keeping its shape. Each caches what its backward pass needs
(ReLU its input, Softmax its output), so each Dense needs its own: ``get`` copies an object, and one ``ReLU()``
can serve several layers (as in Keras)."""
import copy

from tinynet import arguments
from tinynet.layers.layer import Layer
from tinynet.layers.relu import ReLU
from tinynet.layers.softmax import Softmax

_ACTIVATIONS = {"relu": ReLU, "softmax": Softmax}


def get(identifier, input_shape=None):
    """``'relu'`` -> ReLU(); ``'softmax'`` -> Softmax(); None or ``'linear'`` -> None; a layer -> a copy.
    Given the ``input_shape`` it will see (batch axis first), the activation is built for it, and refused
    unless it is a function of each row: a layer without weights that keeps the shape."""
    if identifier is None or isinstance(identifier, str) and identifier == "linear":
        return None
    if isinstance(identifier, Layer):
        activation = copy.deepcopy(identifier)
    else:
        activation = arguments.by_name(identifier, _ACTIVATIONS, Layer, "activation",
                                       "'linear' (or None), or a layer object such as tinynet.layers.ReLU()")
    if input_shape is not None:
        check_fits(activation, tuple(input_shape))
    return activation


def check_fits(activation, input_shape):
    """A ValueError unless ``activation``, built for ``input_shape``, has no weights and keeps the shape."""
    name = type(activation).__name__
    activation.build(input_shape)
    if activation.params:  # a Dense as an activation: its weights would never train
        raise ValueError(f"activation must be a layer without weights, such as 'relu' or tinynet.layers.ReLU(); "
                         f"{name} has weights ({', '.join(activation.params)}), which an activation never trains. "
                         f"To apply it after this layer, add it to the model as a layer of its own: "
                         f"Sequential([..., Dense({input_shape[-1]}), {name}(...)]).")
    if tuple(activation.output_shape) != input_shape:
        raise ValueError(f"activation must keep the shape of its input, as relu and softmax do; {name} turns "
                         f"{input_shape} into {tuple(activation.output_shape)}. To change the shape, add a layer "
                         "of its own to the model.")


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
