"""Where Keras keeps ``History``: ``tinynet.callbacks.History``."""
from tinynet.callbacks.history import History

__all__ = ["History"]
