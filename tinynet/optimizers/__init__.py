"""Optimizers, by object or by Keras name: ``optimizer='rmsprop'``, ``optimizer='sgd'``."""
from tinynet.optimizers.optimizer import Optimizer
from tinynet.optimizers.rmsprop import RMSprop
from tinynet.optimizers.sgd import SGD

_OPTIMIZERS = {"rmsprop": RMSprop, "sgd": SGD}


def get(identifier):
    """An optimizer object from a name such as ``'rmsprop'``, or the object itself."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if not isinstance(identifier, str) or identifier not in _OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {identifier!r}. Known: {', '.join(_OPTIMIZERS)}, "
            "or an object such as tinynet.optimizers.RMSprop(learning_rate=0.001)."
        )
    return _OPTIMIZERS[identifier]()


__all__ = ["Optimizer", "RMSprop", "SGD", "get"]
