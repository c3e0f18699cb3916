"""Softmax: turns a row of scores z into probabilities that sum to 1."""
from tinynet import backend
from tinynet.layers.layer import Layer


class Softmax(Layer):
    def forward(self, z, training=False):
        xp = backend.xp()
        e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))  # subtracting the max cannot overflow
        self.y = e / xp.sum(e, axis=-1, keepdims=True)  # y_i = exp(z_i) / sum_j exp(z_j)
        return self.y

    def backward(self, dy):
        y = self.y
        # dy_i/dz_k = y_i (delta_ik - y_k), so
        # dL/dz_k = sum_i dL/dy_i * y_i (delta_ik - y_k) = y_k (dL/dy_k - sum_i dL/dy_i y_i)
        return y * (dy - backend.xp().sum(dy * y, axis=-1, keepdims=True))
