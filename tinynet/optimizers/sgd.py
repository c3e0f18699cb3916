"""SGD: step each parameter downhill, against its gradient (optionally with momentum)."""
from tinynet import arguments, backend
from tinynet.optimizers.optimizer import Optimizer


class SGD(Optimizer):
    """Keras's gradient descent optimizer, with optional (Nesterov) momentum.

    Plain gradient descent (``momentum=0``, the default): the gradient g points
    uphill, so step the other way, by a fraction ``learning_rate`` of it:

        w = w - learning_rate * g

    With momentum, keep a velocity v (starting at 0) that remembers past steps:
    steps that agree add up, steps that flip back and forth cancel out.

        v = momentum * v - learning_rate * g
        w = w + v

    With ``nesterov=True``, look one velocity step ahead:

        v = momentum * v - learning_rate * g
        w = w + momentum * v - learning_rate * g

    Where PyTorch differs: ``torch.optim.SGD`` keeps a buffer of gradients
    instead of a velocity, ``buf = momentum * buf + g; w = w - lr * buf``
    (Nesterov: ``w = w - lr * (g + momentum * buf)``). With a fixed learning rate
    the two take the same steps (v = -lr * buf); they differ when the learning
    rate changes during training, since Keras's v remembers the old rate.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = arguments.real(momentum, "momentum", "a number in [0, 1], such as 0.9",
                                       lambda m: 0 <= m <= 1)
        self.nesterov = arguments.flag(nesterov, "nesterov")

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def build_slot(self, param):
        if self.momentum == 0:
            return None  # plain gradient descent keeps no state
        return backend.xp().zeros_like(param)  # v starts at 0

    def update_step(self, g, w, v):
        lr, momentum = self.learning_rate, self.momentum
        if v is None:
            w -= lr * g  # w = w - lr * g
            return
        step = lr * g
        v *= momentum
        v -= step  # v = momentum * v - lr * g    (in place)
        if self.nesterov:
            w += momentum * v - step  # w = w + momentum * v - lr * g
        else:
            w += v  # w = w + v
