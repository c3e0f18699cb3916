"""Flatten: each sample's values in one row, (N, H, W, C) -> (N, H*W*C), as Dense takes them."""
import math

from tinynet import backend
from tinynet.layers.layer import Layer


class Flatten(Layer):
    """No parameters. The order is NumPy's (row-major, channels last): Keras's, so weights carry over.
    Where PyTorch differs: its channels-first images flatten channel by channel, a different order."""

    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))

    def forward(self, x, training=False):
        self.input_shape_seen = x.shape  # backward gives dL/dx this shape back
        return backend.xp().reshape(x, (x.shape[0], -1))  # y = x as rows   (N, H*W*C)

    def backward(self, dy):
        return backend.xp().reshape(dy, self.input_shape_seen)  # dL/dx = dL/dy, unflattened   (N, H, W, C)
