"""Layers, where a Keras user finds them: ``tinynet.layers.Dense`` and friends."""
from tinynet.layers.layer import Layer
from tinynet.layers.relu import ReLU
from tinynet.layers.softmax import Softmax
from tinynet.layers.dense import Dense
from tinynet.layers.conv2d import Conv2D
from tinynet.layers.max_pooling2d import MaxPool2D, MaxPooling2D
from tinynet.layers.flatten import Flatten
from tinynet.layers.dropout import Dropout
from tinynet.layers.batch_normalization import BatchNormalization

__all__ = ["BatchNormalization", "Conv2D", "Dense", "Dropout", "Flatten", "Layer", "MaxPool2D", "MaxPooling2D",
           "ReLU", "Softmax"]
