"""Categorical crossentropy: L = -mean over the batch of sum_i y_i log p_i."""
from tinynet import backend
from tinynet.losses.loss import Loss

EPSILON = 1e-7  # Keras's backend.epsilon(): probabilities are clipped to [1e-7, 1 - 1e-7]


class CategoricalCrossentropy(Loss):
    """Crossentropy between one-hot targets ``y`` and predicted probabilities ``p``.

    With ``from_logits=False`` (the default) ``y_pred`` holds probabilities and
    Keras's formula is used: renormalise each row, clip to [1e-7, 1 - 1e-7],
    then ``-sum(y * log(p))``, averaged over the batch.

    With ``from_logits=True`` ``y_pred`` holds the scores z before a softmax and
    ``-sum(y * log_softmax(z))`` is computed without ever forming log(0).  Keras
    does this on its own when the model ends in a softmax (it reads the
    softmax's input), and so does ``Sequential``; the gradient is then simply
    dL/dz = (softmax(z) - y) / N.
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits=False):
        self.from_logits = from_logits

    def forward(self, y_true, y_pred):
        xp = backend.xp()
        self.check_shapes(y_true.shape, y_pred.shape)
        self.y, self.n = y_true, y_pred.shape[0]
        if self.from_logits:
            shifted = y_pred - xp.max(y_pred, axis=-1, keepdims=True)
            log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))  # log softmax(z)
            self.p = xp.exp(log_p)
        else:
            self.total = xp.sum(y_pred, axis=-1, keepdims=True)
            self.q = y_pred / self.total  # q = p / sum(p): rows sum to 1
            self.q_clipped = xp.clip(self.q, EPSILON, 1.0 - EPSILON)
            log_p = xp.log(self.q_clipped)
        return -xp.sum(y_true * log_p) / self.n  # L = -1/N sum_n sum_i y_ni log p_ni

    def backward(self):
        xp = backend.xp()
        y, n = self.y, self.n
        if self.from_logits:
            return (self.p - y) / n  # dL/dz = (softmax(z) - y) / N   (rows of y sum to 1)
        # dL/dq = -y / q / N where q was not clipped (clipping has slope 0 outside the range)
        inside = (self.q >= EPSILON) & (self.q <= 1.0 - EPSILON)
        dq = xp.where(inside, -y / self.q_clipped, 0.0) / n
        # q = p / S with S = sum(p):  dL/dp_j = (dL/dq_j - sum_i dL/dq_i q_i) / S
        return (dq - xp.sum(dq * self.q, axis=-1, keepdims=True)) / self.total

    def check_shapes(self, y_true_shape, y_pred_shape):
        if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
            raise ValueError(
                f"categorical_crossentropy needs one-hot targets of shape (N, {y_pred_shape[-1]}), "
                f"but got integer labels of shape {tuple(y_true_shape)}. "
                f"Use y = tinynet.utils.to_categorical(y, {y_pred_shape[-1]})."
            )
        super().check_shapes(y_true_shape, y_pred_shape)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """The loss as a function: ``categorical_crossentropy(y, p)``."""
    return CategoricalCrossentropy(from_logits=from_logits).forward(y_true, y_pred)
