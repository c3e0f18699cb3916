"""Losses, by object or by Keras name: ``loss='categorical_crossentropy'``, ``loss='mse'``."""
from tinynet import arguments
from tinynet.losses.loss import Loss
from tinynet.losses.softmax_crossentropy import SoftmaxCrossentropy, loss_on_logits
from tinynet.losses.categorical_crossentropy import CategoricalCrossentropy, categorical_crossentropy
from tinynet.losses.mean_squared_error import MeanSquaredError, mean_squared_error

_LOSSES = {"categorical_crossentropy": CategoricalCrossentropy, "mean_squared_error": MeanSquaredError,
           "mse": MeanSquaredError}  # mse: Keras's short name


def get(identifier):
    """A loss object from a name such as ``'categorical_crossentropy'``, or the object itself."""
    return arguments.by_name(identifier, _LOSSES, Loss, "loss", "a tinynet.losses.Loss object")


__all__ = ["CategoricalCrossentropy", "Loss", "MeanSquaredError", "categorical_crossentropy", "get",
           "mean_squared_error", "SoftmaxCrossentropy"]
