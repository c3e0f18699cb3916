"""Softmax and categorical crossentropy in one step, from the logits z."""
import warnings

import numpy

from tinynet import backend
from tinynet.kernels import softmax_crossentropy as kernel
from tinynet.layers.softmax import softmax
from tinynet.losses.loss import Loss, one_hot_twice_hint


class SoftmaxCrossentropy(Loss):
    """``L = -mean_n sum_i y_ni log softmax(z_n)_i``, from the scores z before the softmax.
    ``compile`` trains a model that ends in a softmax with this loss when it is given
    ``categorical_crossentropy``, as Keras does. It is the same number while the right class's
    probability is above that loss's clip (1e-7), but log(0) never happens, and the softmax's
    Jacobian and the log's 1/p cancel into one subtraction: dL/dz = (softmax(z) - y) / N.
    ``CategoricalCrossentropy(from_logits=True)`` is this loss too."""

    name = "categorical_crossentropy"

    def forward(self, y, z):
        xp = backend.xp()
        self.check_shapes(y.shape, z.shape)
        if backend.get_backend() == "cupy" and kernel.fits(y, z):
            return self.forward_compiled(y, z)  # on a GPU: the lines below and backward's, as one kernel
        self.dz = None  # backward computes it
        p, log_p = softmax(z)  # p = softmax(z), and log p without ever taking log(0)
        # Flush to zero (rmsprop.py says why): a p so small that p / N in dz would be subnormal counts as 0.
        self.y, self.p = y, xp.where(p < z.shape[0] * xp.finfo(p.dtype).smallest_normal, 0.0, p)
        return -xp.sum(y * log_p) / z.shape[0]  # L = -1/N sum_n sum_i y_ni log p_ni

    def backward(self):
        if self.dz is not None:
            return self.dz  # already written by forward's kernel (CuPy): the line below, compiled
        return (self.p - self.y) / self.y.shape[0]  # dL/dz = (p - y) / N   (each row of y sums to 1)

    # --- the same, compiled (CuPy only): on a GPU each CuPy call above is one kernel, about fifteen for
    # forward and backward; tinynet/kernels/softmax_crossentropy.py does exactly their operations in one.
    def forward_compiled(self, y, z):
        """``forward``, and ``backward``'s dz, in one kernel launch: sets ``self.y``, ``self.p`` (flushed)
        and ``self.dz`` as the readable lines would, and returns the loss (a 0-d array)."""
        self.y = y
        self.p, self.dz, loss = kernel.softmax_crossentropy(y, z)
        return loss

    def check_shapes(self, y_shape, z_shape):
        """Targets shaped like the predictions; integer labels are told how to become one-hot."""
        if tuple(y_shape) != tuple(z_shape):
            labels = len(y_shape) == len(z_shape) - 1 or (len(y_shape) == len(z_shape) and y_shape[-1] == 1)
            fix = (f" Use y = tinynet.utils.to_categorical(y, {z_shape[-1]}) for integer labels." if labels
                   else one_hot_twice_hint(y_shape, z_shape))
            raise ValueError(f"categorical_crossentropy needs one-hot targets shaped like the predictions; got "
                             f"targets of shape {tuple(y_shape)} for predictions of shape {tuple(z_shape)}.{fix}")

    def check_targets(self, y):
        """Targets are probabilities: each row in 0..1, summing to 1 (one-hot, or soft labels)."""
        xp = backend.xp()
        bad = xp.any((y < 0) | (y > 1), axis=-1) | (xp.abs(xp.sum(y, axis=-1) - 1) > 1e-3)  # loosely: float32
        if bool(xp.any(bad)):
            row = int(numpy.flatnonzero(backend.to_numpy(bad))[0])
            raise ValueError(f"categorical_crossentropy needs targets that are probabilities, each row in 0..1 "
                             f"and summing to 1, as tinynet.utils.to_categorical makes them; y[{row}] is "
                             f"{backend.to_numpy(y[row, ...]).tolist()}.")


def loss_on_logits(loss, last_layer):
    """The loss a training step computes for ``loss`` (``compile``'s): ``SoftmaxCrossentropy`` on the logits
    z when the model ends in a softmax (a Softmax layer, or a Dense whose activation is one) and ``loss`` is
    crossentropy on its probabilities, as Keras does; otherwise ``loss`` itself."""
    from tinynet.layers import Softmax
    from tinynet.losses.categorical_crossentropy import CategoricalCrossentropy
    ends_in_softmax = hasattr(last_layer, "forward_linear") and (  # Dense: z = x W + b; a Softmax layer: z = x
        isinstance(last_layer, Softmax) or isinstance(getattr(last_layer, "activation", None), Softmax))
    on_logits = isinstance(loss, SoftmaxCrossentropy) or isinstance(loss, CategoricalCrossentropy) and loss.from_logits
    if on_logits and ends_in_softmax:
        warnings.warn("The model ends in a softmax, but the loss expects logits (from_logits=True): the "
                      "softmax is applied twice. Use loss='categorical_crossentropy', or a last layer "
                      "without activation.", stacklevel=3)
    if isinstance(loss, CategoricalCrossentropy) and not on_logits and ends_in_softmax:
        return SoftmaxCrossentropy()  # the last layer's forward_linear gives z, this loss applies the softmax
    return loss
