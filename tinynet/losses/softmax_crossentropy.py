"""Softmax and categorical crossentropy in one step, from the logits z."""
import numpy

from tinynet import backend
from tinynet.losses.loss import Loss


class SoftmaxCrossentropy(Loss):
    """``-mean_n sum_i y_ni log softmax(z_n)_i``, computed from the scores z before the softmax.

    A model that ends in a softmax and is compiled with ``categorical_crossentropy``
    trains on this (``Sequential.compile`` decides so, as Keras does): the same
    number as the crossentropy of the probabilities while the right class's
    probability is above that loss's clip (1e-7), but log(0) never happens,
    and the softmax's Jacobian and the log's 1/p cancel into one subtraction:

        dL/dz = (softmax(z) - y) / N

    ``CategoricalCrossentropy(from_logits=True)`` is this loss too.
    """

    name = "categorical_crossentropy"

    def forward(self, y, z):
        xp = backend.xp()
        self.check_shapes(y.shape, z.shape)
        shifted = z - xp.max(z, axis=-1, keepdims=True)  # exp of a shifted row cannot overflow; softmax is unchanged
        e = xp.exp(shifted)
        total = xp.sum(e, axis=-1, keepdims=True)
        self.y, self.p = y, e / total  # p = softmax(z)
        log_p = shifted - xp.log(total)  # log p, without ever taking log(0)
        return -xp.sum(y * log_p) / z.shape[0]  # L = -1/N sum_n sum_i y_ni log p_ni

    def backward(self):
        return (self.p - self.y) / self.y.shape[0]  # dL/dz = (p - y) / N   (each row of y sums to 1)

    def check_targets(self, y):
        """Targets are probabilities: each row in 0..1, summing to 1 (one-hot, or soft labels)."""
        xp = backend.xp()
        # a row is bad when an entry lies outside 0..1, or the row does not sum to 1 (to float32 rounding, loosely)
        bad = xp.any((y < 0) | (y > 1), axis=-1) | (xp.abs(xp.sum(y, axis=-1) - 1) > 1e-3)
        if bool(xp.any(bad)):
            row = int(numpy.flatnonzero(backend.to_numpy(bad))[0])
            raise ValueError(f"categorical_crossentropy needs targets that are probabilities, each row in 0..1 "
                             f"and summing to 1, as tinynet.utils.to_categorical makes them; y[{row}] is "
                             f"{backend.to_numpy(y[row, ...]).tolist()}.")

    def check_shapes(self, y_true_shape, y_pred_shape):
        integer_labels = len(y_true_shape) == len(y_pred_shape) - 1 or (
            len(y_true_shape) == len(y_pred_shape) and y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
        if integer_labels:
            raise ValueError(
                f"categorical_crossentropy needs one-hot targets of shape (N, {y_pred_shape[-1]}), "
                f"but got integer labels of shape {tuple(y_true_shape)}. "
                f"Use y = tinynet.utils.to_categorical(y, {y_pred_shape[-1]})."
            )
        Loss.check_shapes(self, y_true_shape, y_pred_shape)
