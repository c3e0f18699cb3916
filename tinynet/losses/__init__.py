"""Losses, by object or by Keras name: ``loss='categorical_crossentropy'``, ``loss='mse'``."""
import inspect

from tinynet import arguments
from tinynet.losses.loss import Loss
from tinynet.losses.softmax_crossentropy import SoftmaxCrossentropy, loss_on_logits
from tinynet.losses.categorical_crossentropy import CategoricalCrossentropy, categorical_crossentropy
from tinynet.losses.mean_squared_error import MeanSquaredError, mean_squared_error

_LOSSES = {"categorical_crossentropy": CategoricalCrossentropy, "mean_squared_error": MeanSquaredError,
           "mse": MeanSquaredError}  # mse: Keras's short name


_FUNCTIONS = {categorical_crossentropy: CategoricalCrossentropy, mean_squared_error: MeanSquaredError}


def get(identifier):
    """A loss object from a name such as ``'categorical_crossentropy'``, from a class, from tinynet's function
    of that name (``tinynet.losses.categorical_crossentropy``, as Keras takes its own), or the object itself."""
    if identifier is None:  # compile's default, which Keras also refuses for training
        raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'.")
    for function, cls in _FUNCTIONS.items():
        if identifier is function:
            return cls()
    if inspect.isroutine(identifier):  # a function of one's own, or another library's
        raise ValueError(f"The loss {getattr(identifier, '__name__', identifier)!r} is a function; tinynet needs its "
                         "gradient too. Write a subclass of tinynet.losses.Loss with forward(y_true, y_pred) and "
                         "backward() (dL/dy_pred), as tinynet/losses/mean_squared_error.py does, or use one of: "
                         f"{', '.join(_LOSSES)}.")
    return arguments.by_name(identifier, _LOSSES, Loss, "loss", "a tinynet.losses.Loss object")


__all__ = ["CategoricalCrossentropy", "Loss", "MeanSquaredError", "categorical_crossentropy", "get",
           "mean_squared_error", "SoftmaxCrossentropy"]
