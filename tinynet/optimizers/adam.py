"""Adam: momentum (a running mean m of the gradients) divided by a running root-mean-square (v of g**2)."""
import numpy

from tinynet import arguments, backend
from tinynet.optimizers.optimizer import Optimizer


class Adam(Optimizer):
    """Keras's Adam (Kingma & Ba, 2014), in Keras's form (``update``): for each parameter w with gradient g,

        m = beta_1 * m + (1 - beta_1) * g           (the direction: a running mean of g)
        v = beta_2 * v + (1 - beta_2) * g**2        (the scale: a running mean of g**2)
        w = w - alpha * m / (sqrt(v) + epsilon),    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)

    at step t = 1, 2, ... m and v start at 0, so early on they are too small; alpha corrects both (the
    paper's m / (1 - beta_1**t) and v / (1 - beta_2**t)), with epsilon outside the correction, as in Keras.
    ``amsgrad=True`` divides by the largest v seen so far instead (Reddi et al., 2018).
    Each parameter's state is one array of shape (2, *w.shape): m = slot[0], v = slot[1] (and v_max = slot[2]).
    Where PyTorch differs: ``torch.optim.Adam`` defaults to eps=1e-8 and adds it to sqrt(v_hat), after the
    bias correction: the same step up to where epsilon sits (it matters only where v is tiny)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **unknown):
        super().__init__(learning_rate, **unknown)  # Keras 2's lr=, decay=: a clear error
        self.beta_1 = arguments.real(beta_1, "beta_1", "a number in [0, 1), such as 0.9", lambda b: 0 <= b < 1)
        self.beta_2 = arguments.real(beta_2, "beta_2", "a number in [0, 1), such as 0.999", lambda b: 0 <= b < 1)
        self.epsilon = arguments.positive_float32(epsilon, "epsilon", "1e-7")
        self.amsgrad = arguments.flag(amsgrad, "amsgrad")

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}

    def build_slot(self, param):
        return backend.zeros((3 if self.amsgrad else 2, *param.shape), dtype=param.dtype)  # m, v (, v_max) = 0

    def update(self, w, g, slot):
        """One parameter w, in place, at step t = 1, 2, ..., in Keras's order of operations."""
        xp, t = backend.xp(), self.iterations + 1
        real = numpy.float64 if w.dtype == xp.float64 else numpy.float32  # Keras computes alpha in w's dtype
        beta_1, beta_2 = real(self.beta_1), real(self.beta_2)
        alpha = real(self.learning_rate) * numpy.sqrt(real(1) - beta_2 ** real(t)) / (real(1) - beta_1 ** real(t))
        m, v = slot[0, ...], slot[1, ...]
        m = m + (g - m) * (1 - self.beta_1)  # m = m + (1 - beta_1)(g - m) = beta_1 m + (1 - beta_1) g
        v = v + (g * g - v) * (1 - self.beta_2)  # v = beta_2 v + (1 - beta_2) g**2
        slot[0, ...], slot[1, ...] = m, v  # kept for the next step
        if slot.shape[0] == 3:  # amsgrad
            slot[2, ...] = xp.maximum(slot[2, ...], v)  # v_max = max(v_max, v)
            v = slot[2, ...]
        w -= (m * float(alpha)) / (xp.sqrt(v) + self.epsilon)  # w = w - alpha m / (sqrt(v) + eps)
