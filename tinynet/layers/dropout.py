"""Dropout: while training, zero a random fraction ``rate`` of the inputs and scale the rest by 1 / (1 - rate)."""
import numpy

from tinynet import arguments, backend
from tinynet.layers.layer import Layer
from tinynet.utils import random


class Dropout(Layer):
    """Inverted dropout, as in Keras: in a training step each input is kept with probability 1 - rate and
    divided by 1 - rate, so its expected value is unchanged; at inference (predict, evaluate) the layer
    passes its input through untouched, with nothing to rescale. The mask comes from tinynet's generator:
    ``tinynet.utils.set_random_seed`` repeats it. No parameters."""

    def __init__(self, rate, input_shape=None, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.rate = arguments.real(rate, "rate", "the fraction of inputs to drop, a number in [0, 1) such as 0.5",
                                   lambda r: 0 <= r < 1)
        self.mask = None  # 0 or 1 / (1 - rate) per input, from the last training step (None: identity)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self.mask = None
            return x  # inference: y = x
        keep = random.generator().random(tuple(x.shape), dtype=numpy.float32) >= self.rate  # P(keep) = 1 - rate
        self.mask = backend.to_device(keep, dtype=x.dtype) / (1 - self.rate)  # 0 or 1 / (1 - rate)
        return x * self.mask  # y = x * mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask  # dL/dx = dL/dy * mask
