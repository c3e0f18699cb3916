"""Metrics, by Keras name: ``metrics=['accuracy']``."""
from tinynet.metrics.accuracy import Accuracy

_METRICS = {"accuracy": Accuracy, "acc": Accuracy}


def get(identifier):
    """A metric object from a name such as ``'accuracy'``, or the object itself."""
    if isinstance(identifier, Accuracy):
        return identifier
    if not isinstance(identifier, str) or identifier not in _METRICS:
        raise ValueError(f"Unknown metric {identifier!r}. Known: {', '.join(_METRICS)}.")
    return _METRICS[identifier](name=identifier)


__all__ = ["Accuracy", "get"]
