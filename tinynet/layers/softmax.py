"""Softmax: turns a row of scores z into probabilities that sum to 1."""
from tinynet import backend
from tinynet.layers.layer import Layer


def softmax(z):
    """Row by row, p = softmax(z) and log p, computed without overflow and without log(0): returns (p, log p)."""
    xp = backend.xp()
    shifted = z - xp.max(z, axis=-1, keepdims=True)  # subtracting the max cannot overflow, and changes no p
    e = xp.exp(shifted)
    total = xp.sum(e, axis=-1, keepdims=True)
    return e / total, shifted - xp.log(total)  # p_i = exp(z_i) / sum_j exp(z_j);  log p_i = z_i - log sum_j exp(z_j)


class Softmax(Layer):
    def forward(self, z, training=False):
        self.y, _ = softmax(z)  # y = softmax(z)
        return self.y

    def backward(self, dy):
        y = self.y
        # dy_i/dz_k = y_i (delta_ik - y_k), so
        # dL/dz_k = sum_i dL/dy_i * y_i (delta_ik - y_k) = y_k (dL/dy_k - sum_i dL/dy_i y_i)
        return y * (dy - backend.xp().sum(dy * y, axis=-1, keepdims=True))

    def forward_linear(self, z):
        """The part before the softmax, which is nothing: a model ending in this layer trains on its input,
        the logits z, and the loss applies the softmax (``losses.loss_on_logits``)."""
        return z

    def backward_linear(self, dz):
        return dz  # dL/dz passes through
