"""RMSprop: divide each step by a running root-mean-square of recent gradients."""
from tinynet import arguments, backend, kernels
from tinynet.optimizers.optimizer import Optimizer


class RMSprop(Optimizer):
    """Keras's RMSprop (Hinton, 2012), the default optimizer of ``compile``.

    For each parameter w with gradient g, keeping a running mean v of g**2:

        v = rho * v + (1 - rho) * g**2
        w = w - learning_rate * g / sqrt(v + epsilon)

    Parameters whose gradients are large take smaller steps, and vice versa.

    ``update_step`` below is that formula written with array operations: the
    reference. On NumPy and CuPy, ``step_function`` hands ``apply`` the same
    formula compiled into one pass over the arrays (``tinynet/kernels.py``),
    several times faster and bit-identical. Values of v below the smallest
    normal number (1.2e-38 in float32) are flushed to zero, as TensorFlow's CPU
    kernels do (the kernels module says why).

    Where PyTorch differs: ``torch.optim.RMSprop`` defaults to lr=0.01,
    alpha (our rho) = 0.99 and eps=1e-8, and adds eps *outside* the root:
    ``w -= lr * g / (sqrt(v) + eps)``. Keras, and tinynet, use lr=0.001,
    rho=0.9, epsilon=1e-7 inside the root.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7):
        super().__init__(learning_rate)
        self.rho = arguments.real(rho, "rho", "a number in [0, 1), such as 0.9", lambda r: 0 <= r < 1)
        self.epsilon = arguments.real(epsilon, "epsilon", "a number above 0, such as 1e-7", lambda e: e > 0)

    def build_slot(self, param):
        return backend.xp().zeros_like(param)  # v starts at 0

    def step_function(self):
        fused = kernels.rmsprop()  # update_step's formula compiled into one pass; None on 'strict'
        if fused is None:
            return self.update_step
        return lambda g, w, v: fused(w, g, v, self.learning_rate, self.rho, self.epsilon)

    def update_step(self, g, w, v):
        """The reference update of one parameter, in place, in Keras's order of operations."""
        xp, rho = backend.xp(), self.rho
        v *= rho
        v += (1 - rho) * (g * g)  # v = rho * v + (1 - rho) * g**2
        v[...] = xp.where(v < xp.finfo(v.dtype).smallest_normal, 0.0, v)  # flush subnormal v to zero
        w -= (self.learning_rate * g) / xp.sqrt(v + self.epsilon)  # w = w - lr * g / sqrt(v + eps)
