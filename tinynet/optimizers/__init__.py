"""Optimizers, by object or by Keras name: ``optimizer='rmsprop'``, ``optimizer='adam'``, ``optimizer='sgd'``."""
from tinynet import arguments
from tinynet.optimizers.adam import Adam
from tinynet.optimizers.optimizer import Optimizer
from tinynet.optimizers.rmsprop import RMSprop
from tinynet.optimizers.sgd import SGD

_OPTIMIZERS = {"adam": Adam, "rmsprop": RMSprop, "sgd": SGD}


def get(identifier):
    """An optimizer object from a name such as ``'rmsprop'``, or the object itself."""
    return arguments.by_name(identifier, _OPTIMIZERS, Optimizer, "optimizer",
                             "an object such as tinynet.optimizers.RMSprop(learning_rate=0.001)")


__all__ = ["Adam", "Optimizer", "RMSprop", "SGD", "get"]
