"""The base class of every layer, and the contract they all keep:

- ``forward(x, training=False)`` computes the output ``y`` and caches what backward needs; ``training`` is True
  in a training step, False in predict/evaluate (Dropout and BatchNormalization read it, the others ignore it);
- ``backward(dy)`` takes dL/dy, fills ``grads`` (same keys as ``params``) and returns dL/dx
  (or None when ``needs_input_gradient`` is False: a model's first layer, whose input is the data);
- layers never update their own parameters: optimizers do. Shapes have the batch axis as None: (None, 784)."""
import math
import re

import numpy

from tinynet import arguments, backend


def snake_case(name):
    """``'ReLU'`` -> ``'re_lu'``, ``'Dense'`` -> ``'dense'``: Keras's default layer names."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)  # a _ before each capitalised word: 'MyDense' -> 'My_Dense'
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()  # and between a lower and a capital: 'ReLU' -> 'Re_LU'


def check_input_shape(x, expected, who):
    """A ValueError unless ``x`` has the ``expected`` shape (batch axis aside); the same numbers in another
    shape get the reshape that fixes it: images for a Dense model, flat rows for a Conv2D one."""
    if tuple(x.shape[1:]) != tuple(expected[1:]):
        n = math.prod(expected[1:])
        same_size = math.prod(x.shape[1:]) == n
        if same_size and len(expected) == 2:
            hint = f" Flatten each sample first: x = x.reshape(len(x), {n})."
        elif same_size:  # such as MNIST's (N, 784) or (N, 28, 28) for a Conv2D that takes (N, 28, 28, 1)
            hint = f" Reshape each sample: x = x.reshape(len(x), {', '.join(map(str, expected[1:]))})."
        else:
            hint = ""
        raise ValueError(f"{who} expects inputs of shape {tuple(expected)}, got an array of shape "
                         f"{tuple(x.shape)}.{hint}")


class Layer:
    def __init__(self, input_shape=None, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string such as 'hidden_1', got {name!r}.")
        self.name = name  # None until a model names it ('dense', 'dense_1', ...)
        self.model = None  # the model this layer belongs to (one at most: set by Sequential.add)
        self.params, self.grads = {}, {}  # name -> array, e.g. {'kernel': W, 'bias': b}; name -> dL/dparam
        self.non_trainable = {}  # name -> array that forward updates, no optimizer (BatchNormalization's moving_mean)
        self.input_shape = None if input_shape is None else (None, *arguments.shape(input_shape, "input_shape"))
        self.output_shape, self.built = None, False
        self.needs_input_gradient = True  # False for a model's first layer: backward may skip dL/dx of the data

    def build(self, input_shape):
        """Create the parameters for inputs of ``input_shape`` (batch axis first)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x, training=False):
        """``layer(x)``, as in Keras: build on first use, check the shape of ``x``, then ``forward(x, training)``."""
        if not self.built:
            self.build(self.input_shape or (None, *x.shape[1:]))
        if self.params and self.input_shape is not None:  # weights fix the input's shape; ReLU takes any
            check_input_shape(x, self.input_shape, f"Layer {self.name or type(self).__name__!r}")
        return self.forward(x, training=True) if training else self.forward(x)  # forward(x): as predict calls it

    @property
    def weights(self):
        """Every weight by name, in Keras's order: the trainable ``params``, then the ``non_trainable`` ones."""
        return {**self.params, **self.non_trainable}

    def count_params(self):
        return sum(int(p.size) for p in self.weights.values())

    def get_weights(self):
        """The weights as NumPy arrays, in Keras's order (kernel, then bias; gamma, beta, moving_mean, ...)."""
        return [backend.to_numpy(p) for p in self.weights.values()]

    def set_weights(self, weights):
        """Copy arrays (NumPy, lists or the backend's) into the parameters, in place: all of them,
        or none when one does not fit."""
        for param, value in zip(self.weights.values(), self.checked_weights(weights)):
            param[...] = value

    def checked_weights(self, weights):
        """``weights`` as backend arrays ready for the parameters, or an error naming the first that won't fit."""
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"Layer {self.name!r} has {len(self.weights)} weight arrays "
                             f"({', '.join(self.weights) or 'none'}), but {len(weights)} were given.")
        checked = []
        for (key, param), value in zip(self.weights.items(), weights):
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
        """What rebuilds this layer (not its weights), JSON-ready: ``type(layer).from_config(config)``; saved."""
        return {"name": self.name, "input_shape": None if self.input_shape is None else list(self.input_shape[1:])}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"
