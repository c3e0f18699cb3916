"""tinynet: a small deep-learning engine, written to be read.

The Keras MNIST "hello world" runs with ``keras`` replaced by ``tinynet``::

    from tinynet.models import Sequential
    from tinynet.layers import Dense
"""
from tinynet import (activations, backend, callbacks, datasets, gradcheck, initializers, layers, losses,
                     metrics, models, optimizers, plot, utils)
from tinynet.models import Sequential

__version__ = "0.1.0"

__all__ = ["Sequential", "activations", "backend", "callbacks", "datasets", "gradcheck", "initializers",
           "layers", "losses", "metrics", "models", "optimizers", "plot", "utils"]
