"""Where Keras keeps ``History``: ``tinynet.callbacks.History``; and the per-epoch bookkeeping of ``fit``."""
from tinynet.callbacks.history import History
from tinynet.callbacks.progress import EpochProgress

__all__ = ["EpochProgress", "History"]
