"""The base class of every layer, and the contract they all keep:

- ``forward(x, training=False)`` computes the output ``y`` and caches what backward needs; ``training`` is True
  in a training step, False in predict/evaluate (Dropout and BatchNormalization read it, the others ignore it);
- ``backward(dy)`` takes dL/dy, fills ``grads`` (same keys as ``params``) and returns dL/dx
  (or None when ``needs_input_gradient`` is False: a model's first layer, whose input is the data);
- layers never update their own parameters: optimizers do. Shapes have the batch axis as None: (None, 784)."""
import functools
import inspect
import math
import re

import numpy

from tinynet import arguments, backend


def snake_case(name):
    """``'ReLU'`` -> ``'re_lu'``, ``'Dense'`` -> ``'dense'``: Keras's default layer names."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)  # a _ before each capitalised word: 'MyDense' -> 'My_Dense'
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()  # and between a lower and a capital: 'ReLU' -> 'Re_LU'


def unique_name(base, taken):
    """``base``, or ``base_1``, ``base_2``, ...: the first not in ``taken`` (Keras's dense, dense_1, ...)."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def check_input_shape(x, expected, who):
    """A ValueError unless ``x`` has the ``expected`` shape (batch axis aside), with the reshape that fixes the
    usual mistakes: images for a Dense model, flat rows for a Conv2D one, one sample without its batch axis."""
    if tuple(x.shape[1:]) != tuple(expected[1:]):
        sample = tuple(expected[1:])
        n = math.prod(sample)
        same_size = math.prod(x.shape[1:]) == n
        if same_size and len(expected) == 2:
            hint = f" Flatten each sample first: x = x.reshape(len(x), {n})."
        elif same_size:  # such as MNIST's (N, 784) or (N, 28, 28) for a Conv2D that takes (N, 28, 28, 1)
            hint = f" Reshape each sample: x = x.reshape(len(x), {', '.join(map(str, sample))})."
        elif math.prod(x.shape) == n:
            hint = f" If x is one sample, add the batch axis: x = x.reshape(1, {', '.join(map(str, sample))})."
        else:
            hint = ""
        raise ValueError(f"{who} expects inputs of shape {tuple(expected)}, got an array of shape "
                         f"{tuple(x.shape)}.{hint}")


class Layer:
    def __init_subclass__(cls, **kwargs):
        """A layer of your own may write ``forward(self, x)``, without ``training``: it behaves the same in
        training and inference, so the step's ``training=True`` is accepted here and set aside."""
        super().__init_subclass__(**kwargs)
        forward = vars(cls).get("forward")
        if forward is not None and "training" not in inspect.signature(forward).parameters:
            @functools.wraps(forward)
            def forward_without_training(self, x, training=False):
                return forward(self, x)
            cls.forward = forward_without_training

    def __init__(self, input_shape=None, name=None, trainable=True):
        self.name = None if name is None else arguments.layer_name(name)  # None until a model names it ('dense', ...)
        self.trainable = arguments.flag(trainable, "trainable")  # False: fit leaves the weights as they are
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

    def backward(self, dy):
        raise NotImplementedError(f"Layer {self.name!r} ({type(self).__name__}) defines no backward(dy): a layer "
                                  "of your own needs one, which fills self.grads and returns dL/dx "
                                  "(docs/backprop.md, 'Your own layer').")

    def __call__(self, x, training=False):
        """``layer(x)``, as in Keras: ``x`` is a batch, one sample per row (data that is not yet on the backend,
        lists included, goes there as float32); build on first use, check the shape of ``x``, then forward."""
        who = f"Layer {self.name or type(self).__name__!r}"
        if not backend.is_backend_array(x):
            x = backend.to_device(arguments.array_of_numbers(x, f"{who}: x"))
        if x.ndim == 0:
            raise ValueError(f"{who}: x must be a batch of samples, one per row, got the single number {float(x)}.")
        if not self.built:
            try:
                self.build(self.input_shape or (None, *x.shape[1:]))
            except ValueError as error:  # such as Dense, given a row of numbers: one sample, or a batch of numbers?
                if x.ndim > 1 or self.input_shape is not None:
                    raise
                n = x.shape[0]
                raise ValueError(f"{error} If x is one sample of {n} numbers, add the batch axis: x.reshape(1, {n}); "
                                 f"if it is {n} samples of one number each: x.reshape({n}, 1).") from None
        if self.params and self.input_shape is not None:  # weights fix the input's shape; ReLU takes any
            check_input_shape(x, self.input_shape, who)
        return self.forward(x, training=training)

    @property
    def weights(self):
        """Every weight by name, in Keras's order: the trainable ``params``, then the ``non_trainable`` ones."""
        return {**self.params, **self.non_trainable}

    def count_params(self):
        return sum(int(w.size) for w in self.weights.values())

    def get_weights(self):
        """The weights as NumPy arrays, in Keras's order (kernel, then bias)."""
        return [backend.to_numpy(w) for w in self.weights.values()]

    def set_weights(self, weights):
        """Copy arrays (NumPy, lists or the backend's) into the weights, in place: all of them,
        or none when one does not fit."""
        self.assign_weights(self.checked_weights(weights))

    def assign_weights(self, checked):
        """Copy arrays from ``checked_weights`` into the weights, in place (optimizers keep the same arrays)."""
        for weight, value in zip(self.weights.values(), checked):
            weight[...] = value

    def checked_weights(self, weights):
        """``weights`` as backend arrays ready for the weights, or an error naming the first that won't fit."""
        if isinstance(weights, dict):
            raise TypeError(f"Layer {self.name!r}: set_weights takes a list of arrays in the order get_weights() gives "
                            f"them ({', '.join(self.weights) or 'none'}), not a dict.")
        weights, own = list(weights), self.weights
        if not self.built:
            raise ValueError(f"Layer {self.name or type(self).__name__!r} has no weights yet: they are made when it "
                             "is built. Build it first: add it to a model whose first layer has an input_shape, "
                             "call it on a batch, or call layer.build((None, n_features)).")
        if len(weights) != len(own):
            raise ValueError(f"Layer {self.name!r} has {len(own)} weight arrays "
                             f"({', '.join(own) or 'none'}), but {len(weights)} were given.")
        checked = []
        for (key, param), value in zip(own.items(), weights):
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
        return {"name": self.name, "trainable": arguments.flag(self.trainable, "trainable"),
                "input_shape": None if self.input_shape is None else list(self.input_shape[1:])}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"
