"""Dense, the fully connected layer: y = activation(x @ W + b)."""
import math

from tinynet import activations, arguments, backend, initializers
from tinynet.layers.layer import Layer


class Dense(Layer):
    """``units`` outputs, each a weighted sum of all inputs plus a bias: ``kernel`` W has shape
    (inputs, units) and ``bias`` b shape (units,), as in Keras."""

    def __init__(self, units, activation=None, use_bias=True, input_shape=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", name=None):
        super().__init__(input_shape=input_shape, name=name)
        self.units = arguments.integer(units, "units")
        self.activation = activations.get(activation)  # a layer (ReLU, Softmax) or None
        self.use_bias = arguments.flag(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def get_config(self):
        """Also units, activation and bias (not the initialisers: a loaded layer's weights come from the file)."""
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias}

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"Dense expects inputs of shape (batch, features), got {tuple(input_shape)}. "
                             f"Flatten each sample first, e.g. x.reshape(len(x), {math.prod(input_shape[1:])}).")
        n_in = input_shape[-1]
        try:
            self.params["kernel"] = backend.to_device(self.kernel_initializer((n_in, self.units)))
        except MemoryError:
            raise MemoryError(f"Dense layer {self.name!r}: its {n_in} x {self.units} weights "
                              f"({n_in * self.units * 4 / 2**30:.1f} GiB in float32) do not fit in memory; "
                              "use fewer units.") from None
        if self.use_bias:
            self.params["bias"] = backend.to_device(self.bias_initializer((self.units,)))
        if self.activation is not None:
            self.activation.build((None, self.units))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False):
        z = self.forward_linear(x)  # z = x W + b
        return z if self.activation is None else self.activation.forward(z)  # y = activation(z)

    def backward(self, dy):
        dz = dy if self.activation is None else self.activation.backward(dy)  # dL/dz, back through the activation
        return self.backward_linear(dz)

    def forward_linear(self, x):
        """The linear part alone: z = x @ W + b."""
        self.x = x
        z = x @ self.params["kernel"]  # z = x W        (batch, in) @ (in, units)
        if self.use_bias:
            z = z + self.params["bias"]  # z = x W + b    (b is added to every row)
        return z

    def backward_linear(self, dz):
        """From dL/dz, fill dL/dW and dL/db and return dL/dx (None for a model's first layer)."""
        xp = backend.xp()
        self.grads["kernel"] = self.x.T @ dz  # dL/dW = x.T @ dz      (in, units)
        if self.use_bias:
            self.grads["bias"] = xp.sum(dz, axis=0)  # dL/db = sum of dz over the batch
        if not self.needs_input_gradient:
            return None  # the model's first layer: dL/dx of the data is never used, so skip the product
        return dz @ self.params["kernel"].T  # dL/dx = dz @ W.T      (batch, in)
