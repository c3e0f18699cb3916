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



def get_list(identifiers):
    """compile's ``metrics``: None, or a list of names or metric objects, each once."""
    if identifiers is not None and not isinstance(identifiers, (list, tuple)):  # a str would be read letter by letter
        raise ValueError(f"metrics must be a list, e.g. metrics=['accuracy'], got {identifiers!r}.")
    metrics = [get(m) for m in identifiers or ()]
    names = [m.name for m in metrics]
    twice = [name for name in names if names.count(name) > 1]
    if twice:
        raise ValueError(f"metrics lists {twice[0]!r} twice; each metric is reported under its name, once.")
    return metrics


__all__ = ["Accuracy", "get", "get_list"]
