"""BatchNormalization: standardise each channel, then scale and shift it, y = gamma * x_hat + beta."""
import math

import numpy

from tinynet import arguments, backend
from tinynet.layers.layer import Layer


class BatchNormalization(Layer):
    """Over the last axis (the channels, Keras's default axis=-1): each channel c is standardised with a mean
    and a variance taken over every other axis (the batch, and the pixels of an image),

        x_hat = (x - mean) / sqrt(variance + epsilon),     y = gamma * x_hat + beta.

    In a training step (``training=True``) the mean and variance are the batch's own, and the moving
    statistics follow them: moving = moving * momentum + batch * (1 - momentum). At inference the moving
    statistics are used instead, so a prediction does not depend on the rest of its batch. A frozen layer
    (``trainable=False``) runs as at inference in training steps too, so none of its weights move, as in Keras.
    Weights, in Keras's order: ``gamma`` (ones) and ``beta`` (zeros) are trained, in ``params``;
    ``moving_mean`` (zeros) and ``moving_variance`` (ones) are not, in ``non_trainable``: forward updates them.
    Where PyTorch differs: ``nn.BatchNorm2d`` uses momentum=0.1 for the *new* value (Keras's 0.99 keeps the old),
    eps=1e-5, and the unbiased variance (divided by n - 1) for its running variance; Keras divides by n."""

    def __init__(self, momentum=0.99, epsilon=1e-3, input_shape=None, name=None, trainable=True):
        super().__init__(input_shape=input_shape, name=name, trainable=trainable)
        self.momentum = arguments.real(momentum, "momentum", "a number in [0, 1], such as 0.99",
                                       lambda m: 0 <= m <= 1)
        self.epsilon = arguments.positive_float32(epsilon, "epsilon", "0.001")

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"BatchNormalization expects inputs of shape (batch, ..., channels), "
                             f"got {tuple(input_shape)}.")
        channels = (input_shape[-1],)
        self.params["gamma"] = backend.to_device(numpy.ones(channels))
        self.params["beta"] = backend.to_device(numpy.zeros(channels))
        self.non_trainable["moving_mean"] = backend.to_device(numpy.zeros(channels))
        self.non_trainable["moving_variance"] = backend.to_device(numpy.ones(channels))
        super().build(input_shape)

    def forward(self, x, training=False):
        xp = backend.xp()
        axes = tuple(range(x.ndim - 1))  # every axis but the channels
        moving_mean, moving_variance = self.non_trainable["moving_mean"], self.non_trainable["moving_variance"]
        training = training and self.trainable  # frozen: the moving statistics, and nothing moves
        if training:
            mean = xp.mean(x, axis=axes)  # the batch's mean, per channel     (C,)
            variance = xp.var(x, axis=axes)  # mean((x - mean)**2), divided by n as in Keras   (C,)
            moving_mean[...] = moving_mean * self.momentum + mean * (1 - self.momentum)
            moving_variance[...] = moving_variance * self.momentum + variance * (1 - self.momentum)
        else:
            mean, variance = moving_mean, moving_variance
        self.training = training
        self.inv_std = 1 / xp.sqrt(variance + self.epsilon)  # 1 / sigma,  sigma = sqrt(variance + eps)   (C,)
        self.x_hat = (x - mean) * self.inv_std  # x_hat = (x - mean) / sigma
        return self.params["gamma"] * self.x_hat + self.params["beta"]  # y = gamma * x_hat + beta

    def checked_weights(self, weights):
        """As every layer checks them, and a moving_variance of at least 0 (its square root is taken)."""
        checked = super().checked_weights(weights)
        if bool(backend.xp().any(checked[3] < 0)):
            raise ValueError(f"Layer {self.name!r}: the value given for moving_variance holds negative numbers; "
                             "a variance is at least 0.")
        return checked

    def backward(self, dy):
        xp = backend.xp()
        axes = tuple(range(dy.ndim - 1))
        gamma, x_hat = self.params["gamma"], self.x_hat
        self.grads["gamma"] = xp.sum(dy * x_hat, axis=axes)  # dL/dgamma = sum(dy * x_hat)    (C,)
        self.grads["beta"] = xp.sum(dy, axis=axes)  # dL/dbeta = sum(dy)                      (C,)
        if not self.training:  # mean and sigma were the moving ones: constants, so x_hat is linear in x
            return dy * (gamma * self.inv_std)  # dL/dx = gamma / sigma * dy
        # Training: mean and sigma depend on x too. With n values per channel, the chain rule through
        # x_hat_i = (x_i - mean) / sigma sums to the compact form (derived in the guide):
        #   dL/dx = gamma / (n * sigma) * (n * dy - sum(dy) - x_hat * sum(dy * x_hat))
        n = math.prod(dy.shape[:-1])
        return (gamma * self.inv_std / n) * (n * dy - self.grads["beta"] - x_hat * self.grads["gamma"])
