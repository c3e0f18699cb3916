"""Layers, where a Keras user finds them: ``tinynet.layers.Dense`` and friends."""
from tinynet.layers.layer import Layer
from tinynet.layers.relu import ReLU
from tinynet.layers.softmax import Softmax
from tinynet.layers.dense import Dense

__all__ = ["Dense", "Layer", "ReLU", "Softmax"]
