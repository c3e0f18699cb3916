"""RMSprop: divide each step by a running root-mean-square of recent gradients."""
from tinynet import backend
from tinynet.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """Keras's RMSprop (Hinton, 2012), the default optimizer of ``compile``.

    For each parameter w with gradient g, keeping a running mean v of g**2:

        v = rho * v + (1 - rho) * g**2
        w = w - learning_rate * g / sqrt(v + epsilon)

    Parameters whose gradients are large take smaller steps, and vice versa.

    Where PyTorch differs: ``torch.optim.RMSprop`` defaults to lr=0.01,
    alpha (our rho) = 0.99 and eps=1e-8, and adds eps *outside* the root:
    ``w -= lr * g / (sqrt(v) + eps)``. Keras, and tinynet, use lr=0.001,
    rho=0.9, epsilon=1e-7 inside the root.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7):
        super().__init__(learning_rate)
        self.rho, self.epsilon = rho, epsilon

    def build_slot(self, param):
        return backend.xp().zeros_like(param)  # v starts at 0

    def update_step(self, g, w, v):
        xp, rho = backend.xp(), self.rho
        v *= rho
        v += (1 - rho) * (g * g)  # v = rho * v + (1 - rho) * g**2    (in place)
        w -= self.learning_rate * g / xp.sqrt(v + self.epsilon)  # w = w - lr * g / sqrt(v + eps)
