"""SGD: step each parameter downhill, against its gradient (optionally with momentum)."""
from tinynet import arguments, backend
from tinynet.optimizers.optimizer import Optimizer


class SGD(Optimizer):
    """Keras's gradient descent, with optional (Nesterov) momentum (the formulas: ``update``).
    The gradient g points uphill, so step the other way, by a fraction ``learning_rate`` of it. With
    momentum, a velocity v (from 0) remembers past steps: steps that agree add up, steps that flip back
    and forth cancel out; with ``nesterov=True``, the step looks one velocity step ahead.
    Where PyTorch differs: ``torch.optim.SGD`` keeps ``buf = momentum * buf + g; w = w - lr * buf``: the same
    step (v = -lr * buf) while the learning rate is fixed; when it changes, Keras's v remembers the old rate."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **unknown):
        super().__init__(learning_rate, **unknown)  # Keras 2's lr=, decay=: a clear error
        self.momentum = arguments.real(momentum, "momentum", "a number in [0, 1], such as 0.9",
                                       lambda m: 0 <= m <= 1)
        self.nesterov = arguments.flag(nesterov, "nesterov")

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def build_slot(self, param):
        return None if self.momentum == 0 else backend.xp().zeros_like(param)  # v starts at 0 (if momentum)

    def update(self, w, g, v):
        """One parameter w, in place, from its gradient g (and its velocity v: None without momentum)."""
        lr, momentum = self.learning_rate, self.momentum
        if v is None:
            w -= lr * g  # w = w - lr * g
            return
        step = lr * g
        v *= momentum
        v -= step  # v = momentum * v - lr * g
        if self.nesterov:
            w += momentum * v - step  # w = w + momentum * v - lr * g
        else:
            w += v  # w = w + v
