"""RMSprop: divide each step by a running root-mean-square of recent gradients."""
from tinynet import backend, kernels
from tinynet.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """Keras's RMSprop (Hinton, 2012), the default optimizer of ``compile``.

    For each parameter w with gradient g, keeping a running mean v of g**2:

        v = rho * v + (1 - rho) * g**2
        w = w - learning_rate * g / sqrt(v + epsilon)

    Parameters whose gradients are large take smaller steps, and vice versa.

    ``update_step`` below is that formula written with array operations: the
    reference. On NumPy and CuPy, ``apply`` runs the same formula compiled into
    one pass over the arrays (``tinynet/kernels.py``), which is several times
    faster and gives bit-identical results. Values of v below the smallest
    normal float32 are flushed to zero, as TensorFlow's CPU kernels do (the
    kernels module says why).

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

    def apply(self, grads, params):
        fused = kernels.rmsprop()
        if fused is None:
            return super().apply(grads, params)  # update_step, one array operation at a time
        if self.slots is None:
            self.slots = [self.build_slot(p) for p in params]
        for g, w, v in zip(grads, params, self.slots):
            fused(w, g, v, self.learning_rate, self.rho, self.epsilon)  # update_step's formula, in one pass
        self.iterations += 1

    def update_step(self, g, w, v):
        """The reference update of one parameter, in place, in Keras's order of operations."""
        xp, rho = backend.xp(), self.rho
        v *= rho
        v += (1 - rho) * (g * g)  # v = rho * v + (1 - rho) * g**2
        v[...] = xp.where(v >= kernels.TINY, v, 0.0)  # flush subnormal v to zero
        w -= (self.learning_rate * g) / xp.sqrt(v + self.epsilon)  # w = w - lr * g / sqrt(v + eps)
