"""Saving and loading models with the convolutional layers: every weight (BatchNormalization's moving
statistics too), every setting, and Adam's; damaged files refused before anything is built."""
import json

import numpy as np
import pytest

from tinynet.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from tinynet.models import Sequential, load_model
from tinynet.models.saving import ModelFileError
from tinynet.optimizers import Adam
from tinynet.utils import set_random_seed


def convnet():
    set_random_seed(0)
    model = Sequential([Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(9, 9, 1)),
                        BatchNormalization(momentum=0.9), MaxPool2D(2, padding="same"), Flatten(), Dropout(0.25),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=Adam(learning_rate=0.002, amsgrad=True), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    bn = model.layers[1]
    bn.set_weights([np.full(4, 1.5), np.full(4, 0.25), np.arange(4.0), np.arange(1.0, 5.0)])  # not the defaults
    return model


def test_round_trip(tmp_path):
    model, path = convnet(), tmp_path / "cnn.npz"
    model.save(path)
    with np.load(path) as archive:
        assert "batch_normalization/moving_variance" in archive.files and "conv2d/kernel" in archive.files
    loaded = load_model(path)
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert type(loaded.optimizer) is Adam and loaded.optimizer.get_config() == model.optimizer.get_config()
    x = np.random.default_rng(0).random((5, 9, 9, 1))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.count_params() == model.count_params() == 40 + 16 + (3 * 3 * 4) * 3 + 3  # BN: 4 per channel


def test_a_kernel_of_the_wrong_shape_is_refused_before_building(tmp_path):
    path = tmp_path / "cnn.npz"
    convnet().save(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["conv2d/kernel"] = np.zeros((3, 3, 2, 4), "float32")  # two input channels, for images of one
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match=r"conv2d'?: kernel has shape \(3, 3, 1, 4\)"):
        load_model(path)


def test_missing_moving_statistics_are_refused(tmp_path):
    path = tmp_path / "cnn.npz"
    convnet().save(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    del arrays["batch_normalization/moving_mean"]
    header = json.loads(str(arrays["config"]))
    assert header["config"]["layers"][1]["class_name"] == "BatchNormalization"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match=r"missing \['batch_normal.*moving_mean'\]"):
        load_model(path)
