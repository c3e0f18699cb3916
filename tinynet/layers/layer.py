"""The base class of every layer, and the contract they all keep.

- ``forward(x)`` computes the output ``y`` and caches what backward needs;
- ``backward(dy)`` takes dL/dy, fills ``grads`` (same keys as ``params``) and
  returns dL/dx (or None when ``needs_input_gradient`` is False: a model's first
  layer, whose input is the data);
- layers never update their own parameters: optimizers do.

Shapes include the batch axis as ``None``, as Keras prints them: ``(None, 784)``.
"""
import re

import numpy

from tinynet import arguments, backend


def snake_case(name):
    """``'ReLU'`` -> ``'re_lu'``, ``'Dense'`` -> ``'dense'``: Keras's default layer names."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Layer:
    def __init__(self, input_shape=None, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string such as 'hidden_1', got {name!r}.")
        self.name = name  # None until a model names it ('dense', 'dense_1', ...)
        self.model = None  # the model this layer belongs to (one at most: set by Sequential.add)
        self.params = {}  # name -> array, e.g. {'kernel': W, 'bias': b}
        self.grads = {}  # name -> dL/dparam, filled by backward
        self.input_shape = (None, *arguments.shape(input_shape, "input_shape")) if input_shape is not None else None
        self.output_shape = None
        self.built = False
        # False for a model's first layer: its input is the data, which no one needs dL/dx for,
        # so backward may skip computing it (and return None). Set by Sequential.build.
        self.needs_input_gradient = True

    def build(self, input_shape):
        """Create the parameters for inputs of ``input_shape`` (batch axis first)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x):
        """Build on first use, then run ``forward``."""
        if not self.built:
            shape = (None, *x.shape[1:])
            if self.input_shape is not None and tuple(self.input_shape) != shape:
                raise ValueError(f"Layer {self.name!r} was given input_shape={self.input_shape[1:]}, "
                                 f"but x has shape {tuple(x.shape)}.")
            self.build(shape)
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def count_params(self):
        return sum(int(p.size) for p in self.params.values())

    def get_weights(self):
        """The parameters as NumPy arrays, in Keras's order (kernel, then bias)."""
        return [backend.to_numpy(p) for p in self.params.values()]

    def set_weights(self, weights):
        """Copy arrays (NumPy, lists or the backend's) into the parameters, in place: all of
        them, or none when one does not fit."""
        for param, value in zip(self.params.values(), self.checked_weights(weights)):
            param[...] = value

    def checked_weights(self, weights):
        """``weights`` as backend arrays ready for the parameters, or an error naming the first that does not fit."""
        weights = list(weights)
        if len(weights) != len(self.params):
            raise ValueError(
                f"Layer {self.name!r} has {len(self.params)} weight arrays "
                f"({', '.join(self.params) or 'none'}), but {len(weights)} were given."
            )
        checked = []
        for (key, param), value in zip(self.params.items(), weights):
            where = f"Layer {self.name!r}: the value given for {key}"
            value = arguments.array_of_numbers(value, where)
            with numpy.errstate(over="ignore"):  # too large for float32: reported just below
                value = backend.to_device(value, dtype=param.dtype)
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"Layer {self.name!r}: {key} has shape {tuple(param.shape)}, "
                                 f"but the array given for it has shape {tuple(value.shape)}.")
            if not bool(backend.xp().all(backend.xp().isfinite(value))):
                raise ValueError(f"{where} holds NaN or infinity, or numbers too large for float32.")
            checked.append(value)
        return checked

    def get_config(self):
        """What it takes to rebuild this layer, as JSON-ready values (weights not included).

        ``type(layer).from_config(layer.get_config())`` makes a fresh layer like this one;
        ``model.save`` stores each layer's config (see ``tinynet.models.saving``).
        """
        input_shape = list(self.input_shape[1:]) if self.input_shape is not None else None
        return {"name": self.name, "input_shape": input_shape}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"
