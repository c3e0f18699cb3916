"""Losses, by object or by Keras name: ``loss='categorical_crossentropy'``, ``loss='mse'``."""
from tinynet.losses.loss import Loss
from tinynet.losses.softmax_crossentropy import SoftmaxCrossentropy
from tinynet.losses.categorical_crossentropy import CategoricalCrossentropy, categorical_crossentropy
from tinynet.losses.mean_squared_error import MeanSquaredError, mean_squared_error

_LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,  # Keras's short name
}


def get(identifier):
    """A loss object from a name such as ``'categorical_crossentropy'``, or the object itself."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if not isinstance(identifier, str) or identifier not in _LOSSES:
        raise ValueError(f"Unknown loss {identifier!r}. Known: {', '.join(_LOSSES)}, or a tinynet.losses.Loss object.")
    return _LOSSES[identifier]()


__all__ = ["CategoricalCrossentropy", "Loss", "MeanSquaredError", "categorical_crossentropy", "get",
           "mean_squared_error", "SoftmaxCrossentropy"]
