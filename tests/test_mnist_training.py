"""The seed workflow on the real MNIST data: one epoch reaches 95% validation accuracy."""
import numpy as np

from conftest import mnist_dir
import tinynet
from tinynet.datasets import mnist
from tinynet.layers import Dense
from tinynet.models import Sequential


def test_one_epoch_of_the_seed_model_reaches_95_percent():
    (x_train, y_train), (x_valid, y_valid) = mnist.load_data(mnist_dir())
    x_train = x_train.reshape(60000, 784) / 255
    x_valid = x_valid.reshape(10000, 784) / 255
    y_train = tinynet.utils.to_categorical(y_train, 10)
    y_valid = tinynet.utils.to_categorical(y_valid, 10)
    tinynet.utils.set_random_seed(0)
    model = Sequential()
    model.add(Dense(units=512, activation="relu", input_shape=(784,)))
    model.add(Dense(units=512, activation="relu"))
    model.add(Dense(units=10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=1, verbose=0, validation_data=(x_valid, y_valid))
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.history["val_accuracy"][0] >= 0.95
    assert history.history["accuracy"][0] >= 0.90
    loss, accuracy = model.evaluate(x_valid, y_valid, verbose=0)
    assert accuracy == history.history["val_accuracy"][0]
    np.testing.assert_allclose(loss, history.history["val_loss"][0], rtol=1e-6)
