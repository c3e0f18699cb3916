"""Categorical crossentropy: L = -mean over the batch of sum_i y_i log p_i."""
from tinynet import arguments, backend
from tinynet.losses.loss import Loss
from tinynet.losses.softmax_crossentropy import SoftmaxCrossentropy

EPSILON = 1e-7  # Keras's backend.epsilon(): probabilities are clipped to [1e-7, 1 - 1e-7]


class CategoricalCrossentropy(Loss):
    """Crossentropy between one-hot targets ``y`` and predicted probabilities ``p``, Keras's formula:
    renormalise each row, clip to [1e-7, 1 - 1e-7], then ``-sum(y * log(p))``, averaged over the batch.
    With ``from_logits=True`` the predictions are the scores z before a softmax: ``SoftmaxCrossentropy``.
    """

    name = "categorical_crossentropy"
    check_shapes = SoftmaxCrossentropy.check_shapes  # one-hot targets, or a hint to make them
    check_targets = SoftmaxCrossentropy.check_targets  # probabilities

    def __init__(self, from_logits=False):
        self.from_logits = arguments.flag(from_logits, "from_logits")
        self.logits_loss = SoftmaxCrossentropy() if from_logits else None

    def get_config(self):
        return {"from_logits": self.from_logits}

    def forward(self, y_true, y_pred):
        if self.from_logits:
            return self.logits_loss.forward(y_true, y_pred)
        xp = backend.xp()
        self.check_shapes(y_true.shape, y_pred.shape)
        self.y, self.total = y_true, xp.sum(y_pred, axis=-1, keepdims=True)
        self.q = y_pred / self.total  # q = p / sum(p): rows sum to 1
        self.q_clipped = xp.clip(self.q, EPSILON, 1.0 - EPSILON)
        return -xp.sum(y_true * xp.log(self.q_clipped)) / y_pred.shape[0]  # L = -1/N sum_n sum_i y_ni log q_ni

    def backward(self):
        if self.from_logits:
            return self.logits_loss.backward()
        xp, q = backend.xp(), self.q
        # dL/dq = -y / q / N where q was not clipped (clipping has slope 0 outside the range)
        dq = xp.where((q >= EPSILON) & (q <= 1.0 - EPSILON), -self.y / self.q_clipped, 0.0) / q.shape[0]
        # q = p / S with S = sum(p):  dL/dp_j = (dL/dq_j - sum_i dL/dq_i q_i) / S
        return (dq - xp.sum(dq * q, axis=-1, keepdims=True)) / self.total


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """The loss as a function: ``categorical_crossentropy(y, p)``."""
    return CategoricalCrossentropy(from_logits=from_logits).forward(y_true, y_pred)
