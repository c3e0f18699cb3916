"""Tests for model.save and tinynet.models.load_model: round trips, the file format, bad files."""
import json
import os
import zipfile

import numpy as np
import pytest

from tinynet.layers import Dense, Layer, ReLU, Softmax
from tinynet.models import Sequential, load_model, save_model
from tinynet.models.saving import ModelFileError
from tinynet.optimizers import RMSprop
from tinynet.utils import set_random_seed, to_categorical


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype("float32")
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    return x, to_categorical(labels, 3)


def small_model(seed=0, compile=True):
    set_random_seed(seed)
    model = Sequential([Dense(16, activation="relu", input_shape=(6,)), Dense(8, use_bias=False), ReLU(),
                        Dense(3), Softmax()], name="little")
    if compile:
        model.compile(optimizer=RMSprop(learning_rate=0.01, rho=0.8), loss="categorical_crossentropy",
                      metrics=["accuracy"])
    return model


@pytest.fixture
def trained():
    model = small_model()
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0)
    return model


def summary_of(model):
    lines = []
    model.summary(print_fn=lines.append, line_length=80)
    return lines[0]


# --- round trip ----------------------------------------------------------------------------
def test_round_trip_predicts_identically(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    loaded = load_model(path)
    x, _ = data(50, seed=1)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), trained.predict(x, verbose=0))
    for a, b in zip(loaded.get_weights(), trained.get_weights()):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_round_trip_keeps_names_shapes_and_summary(tmp_path):
    model = small_model()
    model.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    assert loaded.name == "little"
    assert [layer.name for layer in loaded.layers] == ["dense", "dense_1", "re_lu", "dense_2", "softmax"]
    assert [type(layer) for layer in loaded.layers] == [Dense, Dense, ReLU, Dense, Softmax]
    assert loaded.input_shape == (None, 6) and loaded.output_shape == (None, 3)
    assert summary_of(loaded) == summary_of(model)
    assert "little" in summary_of(loaded) and "dense_1 (Dense)" in summary_of(loaded)


def test_a_trained_model_has_the_same_layer_table_but_no_optimizer_state(trained, tmp_path):
    trained.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    original, reloaded = summary_of(trained).splitlines(), summary_of(loaded).splitlines()
    assert original[:-4] == reloaded[:-3]  # the layer table is the same...
    assert original[-1].startswith(" Optimizer params") and not reloaded[-1].startswith(" Optimizer params")
    assert loaded.optimizer.iterations == 0  # ...but the optimizer's state is not saved


def test_layer_settings_survive(tmp_path):
    model = small_model()
    model.save(tmp_path / "model.npz")
    first, second, _, third, _ = load_model(tmp_path / "model.npz").layers
    assert (first.units, type(first.activation), first.use_bias) == (16, ReLU, True)
    assert (second.units, second.activation, second.use_bias) == (8, None, False)
    assert list(second.params) == ["kernel"]
    assert third.activation is None


def test_compile_settings_are_restored(trained, tmp_path):
    trained.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    assert type(loaded.optimizer) is RMSprop
    assert (loaded.optimizer.learning_rate, loaded.optimizer.rho, loaded.optimizer.epsilon) == (0.01, 0.8, 1e-7)
    assert [m.name for m in loaded.metrics] == ["accuracy"]
    x, y = data(40, seed=2)
    assert loaded.evaluate(x, y, verbose=0) == trained.evaluate(x, y, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)  # and it trains on


def test_compile_false_and_uncompiled_models(trained, tmp_path):
    trained.save(tmp_path / "a.npz")
    assert load_model(tmp_path / "a.npz", compile=False).loss is None
    small_model(compile=False).save(tmp_path / "b.npz")
    loaded = load_model(tmp_path / "b.npz")
    assert loaded.loss is None and loaded.optimizer is None
    x, _ = data(5)
    assert loaded.predict(x, verbose=0).shape == (5, 3)


def test_save_model_function_and_overwrite(trained, tmp_path):
    path = tmp_path / "model.npz"
    save_model(trained, path)
    assert load_model(path).count_params() == trained.count_params()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.save(path, overwrite=False)
    trained.save(str(path))  # overwrite=True by default, str paths too


def test_custom_layers_load_with_custom_objects(tmp_path):
    class Square(Layer):
        def forward(self, x):
            return x * x

    model = Sequential([Dense(4, input_shape=(3,)), Square()])
    model.save(tmp_path / "model.npz")
    with pytest.raises(ModelFileError, match=r"unknown class 'Square'.*custom_objects"):
        load_model(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz", custom_objects={"Square": Square})
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# --- the file format ---------------------------------------------------------------------
def test_the_file_is_a_plain_npz_with_json_and_named_weights(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert archive.files == ["config", "dense/kernel", "dense/bias", "dense_1/kernel", "dense_2/kernel",
                                 "dense_2/bias"]
        header = json.loads(str(archive["config"]))
        np.testing.assert_array_equal(archive["dense_1/kernel"], trained.layers[1].get_weights()[0])
    assert (header["format"], header["format_version"], header["class_name"]) == ("tinynet", 1, "Sequential")
    assert header["config"]["layers"][0] == {"class_name": "Dense", "config": {
        "name": "dense", "input_shape": [6], "units": 16, "activation": "relu", "use_bias": True}}
    assert header["compile_config"]["loss"] == {"class_name": "CategoricalCrossentropy",
                                                "config": {"from_logits": False}}


def test_saving_leaves_no_temporary_files_and_ordinary_permissions(trained, tmp_path):
    trained.save(tmp_path / "model.npz")
    trained.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == ["model.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "model.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_save_leaves_the_old_file_intact(trained, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    small_model(seed=5).save(path)
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        trained.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_errors(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match=r"\.npz"):
        model.save(tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "no" / "such" / "folder" / "model.npz")
    with pytest.raises(ValueError, match="input_shape"):
        Sequential([Dense(3)]).save(tmp_path / "unbuilt.npz")
    twins = Sequential([Dense(3, input_shape=(2,), name="same"), Dense(3, name="same")])
    with pytest.raises(ValueError, match="unique"):
        twins.save(tmp_path / "twins.npz")
    assert os.listdir(tmp_path) == []


# --- bad files give clear errors -----------------------------------------------------------
def test_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such model file"):
        load_model(tmp_path / "nothing.npz")


@pytest.mark.parametrize("content, why", [
    (b"", "it is empty"),
    (b"hello, I am a text file\n", "it is not a zip archive"),
    (b"PK\x03\x04\x14\x00garbage", r"it cannot be read as an \.npz archive"),
], ids=["empty", "text", "broken-zip"])
def test_files_that_are_not_npz(tmp_path, content, why):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=f"is not a tinynet model file: {why}"):
        load_model(path)


def test_a_truncated_model_file(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="is not a tinynet model file"):
        load_model(path)


def test_an_npz_that_is_not_a_model(tmp_path):
    path = tmp_path / "random.npz"
    np.savez(path, a=np.random.rand(3), b=np.arange(4))
    with pytest.raises(ModelFileError, match=r"no 'config' entry \(it holds a, b\)"):
        load_model(path)
    assert issubclass(ModelFileError, ValueError)  # as Keras raises ValueError for unreadable files


def test_a_single_npy_array(tmp_path):
    path = tmp_path / "model.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ModelFileError, match="not a zip archive"):
        load_model(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, config=np.array([{"format": "tinynet"}], dtype=object))
    with pytest.raises(ModelFileError, match="not a tinynet model file: .*plain arrays .*allow_pickle=False"):
        load_model(path)


def rewrite(path, change_header=None, change_arrays=None):
    """Rewrite a saved model's archive with its header or arrays changed."""
    with np.load(path) as archive:
        arrays = dict(archive)
    header = json.loads(str(arrays.pop("config")))
    if change_header:
        change_header(header)
    if change_arrays:
        change_arrays(arrays)
    np.savez(path, config=np.array(json.dumps(header)), **arrays)


def test_a_config_of_another_format(trained, tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, config=np.array('{"some": "json"}'))
    with pytest.raises(ModelFileError, match="does not say format 'tinynet'"):
        load_model(path)
    np.savez(path, config=np.array("not json {"))
    with pytest.raises(ModelFileError, match="is not JSON"):
        load_model(path)
    trained.save(path)
    rewrite(path, change_header=lambda h: h.update(format_version=99))
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(path)


def test_weights_of_the_wrong_shape(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    rewrite(path, change_arrays=lambda a: a.update({"dense_1/kernel": np.zeros((16, 9), "float32")}))
    with pytest.raises(ModelFileError, match=r"do not match the architecture: Layer 'dense_1': kernel has shape "
                                             r"\(16, 8\), but the array given for it has shape \(16, 9\)"):
        load_model(path)


def test_weights_missing_or_extra(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    rewrite(path, change_arrays=lambda a: a.pop("dense_2/bias"))
    with pytest.raises(ModelFileError, match=r"missing \['dense_2/bias'\], unexpected none"):
        load_model(path)
    trained.save(path)
    rewrite(path, change_header=lambda h: h["config"]["layers"][0]["config"].update(use_bias=False))
    with pytest.raises(ModelFileError, match=r"missing none, unexpected \['dense/bias'\]"):
        load_model(path)


def test_an_architecture_that_cannot_be_built(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    rewrite(path, change_header=lambda h: h["config"]["layers"][0]["config"].update(activation="tanh"))
    with pytest.raises(ModelFileError, match=r"architecture in the file cannot be rebuilt: Unknown activation 'tanh'"):
        load_model(path)


def test_the_loader_reads_the_real_zip_not_the_name(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist())[0] == "config.npy"
    renamed = tmp_path / "weights.bin"  # any name works: the content decides
    renamed.write_bytes(path.read_bytes())
    assert load_model(renamed).count_params() == trained.count_params()


def test_other_optimizers_and_losses_round_trip(tmp_path):
    from tinynet.losses import MeanSquaredError
    from tinynet.optimizers import SGD

    model = Sequential([Dense(1, input_shape=(1,))])  # the notebook's line, y = m*x + b
    model.compile(optimizer=SGD(learning_rate=0.03, momentum=0.5, nesterov=True), loss="mse")
    model.save(tmp_path / "line.npz")
    loaded = load_model(tmp_path / "line.npz")
    assert type(loaded.optimizer) is SGD and type(loaded.loss) is MeanSquaredError
    assert (loaded.optimizer.learning_rate, loaded.optimizer.momentum, loaded.optimizer.nesterov) == (0.03, 0.5, True)
    x = np.arange(5, dtype="float32").reshape(5, 1)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_compile_settings_that_cannot_be_saved_warn(tmp_path):
    from tinynet.losses import CategoricalCrossentropy

    class Smoothed(CategoricalCrossentropy):
        def __init__(self, smoothing=0.1):  # keeps no attribute named smoothing
            super().__init__()

    model = Sequential([Dense(3, activation="softmax", input_shape=(2,))])
    model.compile(loss=Smoothed())
    with pytest.warns(UserWarning, match="compile settings are not saved.*smoothing"):
        model.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    assert loaded.loss is None  # the architecture and weights are there; compile it again
    x = np.ones((1, 2), "float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
