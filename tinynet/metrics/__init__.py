"""Metrics, by Keras name, class or object: ``metrics=['accuracy']``, ``[Accuracy]``, ``[Accuracy()]``."""
from tinynet import arguments
from tinynet.metrics.accuracy import Accuracy

_METRICS = {"accuracy": Accuracy, "acc": Accuracy}


def get(identifier):
    """A metric object from a name such as ``'accuracy'`` (reported under that name), from a class, or the object."""
    if isinstance(identifier, str) and identifier in _METRICS:
        return _METRICS[identifier](name=identifier)
    return arguments.by_name(identifier, _METRICS, Accuracy, "metric", "a metric object such as "
                             "tinynet.metrics.Accuracy()")


__all__ = ["Accuracy", "get"]
