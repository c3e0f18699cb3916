"""Dense, the fully connected layer: y = activation(x @ W + b)."""
import math

import numpy

from tinynet import activations, arguments, backend, initializers
from tinynet.kernels import gemm
from tinynet.layers.layer import Layer
from tinynet.layers.relu import ReLU


class Dense(Layer):
    """``units`` outputs, each a weighted sum of all inputs plus a bias: ``kernel`` W has shape
    (inputs, units) and ``bias`` b shape (units,), as in Keras."""

    def __init__(self, units, activation=None, use_bias=True, input_shape=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.units = arguments.integer(units, "units")
        self.activation = activations.get(activation, (None, self.units))  # a layer (ReLU, Softmax) or None
        self.use_bias = arguments.flag(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def get_config(self):
        """Also units, activation and bias (not the initialisers: a loaded layer's weights come from the file)."""
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias}

    def build(self, input_shape):
        if len(input_shape) != 2:
            flatten = (f" Flatten each sample first, e.g. x.reshape(len(x), {math.prod(input_shape[1:])})."
                       if len(input_shape) > 2 else "")
            raise ValueError(f"Dense expects inputs of shape (batch, features), got {tuple(input_shape)}.{flatten}")
        self.params["kernel"] = self.initial_value("kernel", self.kernel_initializer, (input_shape[-1], self.units))
        if self.use_bias:
            self.params["bias"] = self.initial_value("bias", self.bias_initializer, (self.units,))
        if self.activation is not None:
            self.activation.build((None, self.units))
        super().build(input_shape)

    def initial_value(self, key, initializer, shape):
        """``initializer(shape)`` on the device, checked: an array of that shape, of finite numbers."""
        who = f"Layer {self.name or type(self).__name__!r}"
        where = f"{who}: {key}_initializer {getattr(initializer, '__name__', initializer)}"
        try:
            value = arguments.array_of_numbers(initializer(shape), f"{where} returned no array of numbers")
            if tuple(value.shape) != shape:
                raise ValueError(f"{where} returned an array of shape {tuple(value.shape)} for the {key} of shape "
                                 f"{shape}: an initializer takes a shape and returns an array of that shape.")
            with numpy.errstate(over="ignore"):  # too large for float32: reported just below
                value = backend.to_device(value)
        except MemoryError:
            raise MemoryError(f"{who}: its {' x '.join(map(str, shape))} {key} "
                              f"({math.prod(shape) * 4 / 2**30:.1f} GiB in float32) does not fit in memory; "
                              "use fewer units.") from None
        if not bool(backend.xp().all(backend.xp().isfinite(value))):
            raise ValueError(f"{where} returned NaN or infinity, or numbers too large for float32.")
        return value

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False):
        if fused_with_relu(self, x):
            return self.forward_compiled(x)  # on a GPU, in the captured step: the two lines below as one kernel
        z = self.forward_linear(x)  # z = x W + b
        return z if self.activation is None else self.activation.forward(z)  # y = activation(z)

    def backward(self, dy):
        if fused_with_relu(self, dy):
            return self.backward_compiled(dy, mask=self.activation.x)  # on a GPU, in the captured step: one kernel
        dz = dy if self.activation is None else self.activation.backward(dy)  # dL/dz, back through the activation
        return self.backward_linear(dz)

    def forward_linear(self, x):
        """The linear part alone: z = x @ W + b."""
        self.x = x
        b = self.params["bias"] if self.use_bias else None
        return backend.matmul(x, self.params["kernel"], b)  # z = x W + b   (batch, in) @ (in, units), b on every row

    def backward_linear(self, dz):
        """From dL/dz, fill dL/dW and dL/db and return dL/dx (None for a model's first layer)."""
        if backend.own_gemm_active() and gemm.fits(self.x, dz, *self.params.values()):
            return self.backward_compiled(dz)  # on a GPU, in the captured step: dW and db in one kernel
        xp = backend.xp()
        self.grads["kernel"] = backend.matmul(self.x.T, dz)  # dL/dW = x.T @ dz      (in, units)
        if self.use_bias:
            self.grads["bias"] = xp.sum(dz, axis=0)  # dL/db = sum of dz over the batch
        if not self.needs_input_gradient:
            return None  # the model's first layer: dL/dx of the data is never used, so skip the product
        return backend.matmul(dz, self.params["kernel"].T)  # dL/dx = dz @ W.T      (batch, in)

    # --- the same, compiled (CuPy, inside backend.own_gemm(): the captured training step and its eager warm-up).
    # On a GPU every line above is a kernel: forward 2 (z = x W + b, then the ReLU), backward 4 (ReLU's mask,
    # dW, db, dx). tinynet/kernels/gemm.py folds the ReLU into the product that makes z and the mask into the
    # products that read dz, sums db as one more row of dW's product, and launches dW's and dx's products, which
    # do not depend on each other, as one kernel: forward 1 kernel, backward 1. Everywhere else (NumPy, strict;
    # on CuPy, predict, evaluate and eager steps) the lines above run.
    def forward_compiled(self, x):
        """``forward``'s two lines, z = x W + b and y = max(z, 0), as one kernel: y is bit for bit theirs (the
        same sum, then NumPy's maximum, NaN included)."""
        self.x = x  # for dW, as forward_linear keeps it
        b = self.params["bias"] if self.use_bias else None
        y = gemm.dense_relu(x, self.params["kernel"], b)  # y = max(x W + b, 0)   (batch, units), one launch
        # ReLU's backward reads its input z only as z > 0, and the kernel never stores z: the ReLU keeps y, whose
        # y > 0 is z > 0 entry by entry (y = z where z > 0; elsewhere y is +0, or NaN where z is NaN: neither > 0).
        self.activation.x = y
        return y

    def backward_compiled(self, dy, mask=None):
        """``backward_linear(dz)`` for dz = dy * (mask > 0), ReLU's backward (``mask`` is its input, or the y
        that stands for it), or for dz = dy when ``mask`` is None: dW, db and dx in one kernel (dW and db in one
        for a model's first layer). dz is never stored: each product reads dy through the mask as it loads it,
        as ReLU's backward computes it."""
        if self.needs_input_gradient:
            # [dL/dW; dL/db] = [x, 1]^T dz   (in + 1, units)   and   dL/dx = dz @ W.T   (batch, in): one launch
            dw, db, dx = gemm.dense_gradients(self.x, dy, self.params["kernel"], mask)
        else:  # the model's first layer: no dL/dx
            dw, db = gemm.weight_gradients(self.x, dy, mask)  # [dL/dW; dL/db] = [x, 1]^T dz, one launch
            dx = None
        self.grads["kernel"] = dw  # dL/dW = x.T @ dz   (in, units): the first rows
        if self.use_bias:  # (a layer without bias gets its db row too, unused: cheaper than a kernel without it)
            self.grads["bias"] = db  # dL/db = 1^T dz   (units,): the last row, summed over the batch in order
        return dx


def fused_with_relu(layer, a):
    """True where ``forward_compiled`` and ``backward_compiled`` stand in for ``forward``'s and ``backward``'s
    readable lines: on CuPy inside ``backend.own_gemm()``, for a layer whose linear part is Dense's z = x W + b
    (Conv2D borrows Dense's forward and backward, with its own linear part), followed by exactly ReLU, on arrays
    of a dtype the kernels take. A function, not a method: Conv2D runs Dense's forward and backward, but has no
    other method of Dense."""
    return (backend.own_gemm_active() and type(layer.activation) is ReLU
            and type(layer).forward_linear is Dense.forward_linear and gemm.fits(a, layer.params["kernel"]))
