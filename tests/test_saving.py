"""Tests for model.save and tinynet.models.load_model: round trips, the file format, bad files."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinynet import backend
from tinynet.layers import Dense, Layer, ReLU, Softmax
from tinynet.models import Sequential, load_model, save_model
from tinynet.models import saving
from tinynet.utils import atomic_write
from tinynet.models.saving import ModelFileError
from tinynet.optimizers import RMSprop
from tinynet.utils import set_random_seed, to_categorical

REPO = Path(__file__).resolve().parents[1]


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
        "name": "dense", "trainable": True, "input_shape": [6], "units": 16, "activation": "relu", "use_bias": True}}
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
    with pytest.raises(ValueError, match="a layer named 'same' already; names must be unique"):
        Sequential([Dense(3, input_shape=(2,), name="same"), Dense(3, name="same")])
    twins = Sequential([Dense(3, input_shape=(2,), name="same"), Dense(3)])
    twins.layers[1].name = "same"  # renamed by hand afterwards
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
    with pytest.raises(ModelFileError, match="not a tinynet model file: .*plain arrays .*pickled Python objects; they are refused"):
        load_model(path)


def rewrite(path, change_header=None, change_arrays=None, saved_from=None):
    """Rewrite a saved model's archive with its header or arrays changed (saving ``saved_from`` there first)."""
    if saved_from is not None:
        saved_from.save(path)
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
    rewrite(path, saved_from=trained, change_header=lambda h: h.update(format_version=99))
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(path)


def test_weights_of_the_wrong_shape(trained, tmp_path):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=trained,
            change_arrays=lambda a: a.update({"dense_1/kernel": np.zeros((16, 9), "float32")}))
    with pytest.raises(ModelFileError, match=r"do not match the architecture: Layer 'dense_1': kernel has shape "
                                             r"\(16, 8\), but the array given for it has shape \(16, 9\)"):
        load_model(path)


def test_weights_missing_or_extra(trained, tmp_path):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=trained, change_arrays=lambda a: a.pop("dense_2/bias"))
    with pytest.raises(ModelFileError, match=r"missing \['dense_2/bias'\], unexpected none"):
        load_model(path)
    rewrite(path, saved_from=trained,
            change_header=lambda h: h["config"]["layers"][0]["config"].update(use_bias=False))
    with pytest.raises(ModelFileError, match=r"missing none, unexpected \['dense/bias'\]"):
        load_model(path)


def test_an_architecture_that_cannot_be_built(trained, tmp_path):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=trained,
            change_header=lambda h: h["config"]["layers"][0]["config"].update(activation="tanh"))
    with pytest.raises(ModelFileError, match=r"config.layers\[0\] \(Dense\): Unknown activation 'tanh'"):
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


def test_compile_settings_that_cannot_be_saved_are_an_error_at_save_time(tmp_path):
    from tinynet.losses import CategoricalCrossentropy
    from tinynet.optimizers import RMSprop

    class Smoothed(CategoricalCrossentropy):
        def __init__(self, smoothing=0.1):  # a setting of its own, and no get_config for it
            super().__init__()
            self.smoothing = smoothing

    class Slow(RMSprop):
        def __init__(self, lr=0.0001):  # stores its setting under another name: get_config is RMSprop's
            super().__init__(learning_rate=lr)
            self.lr = lr

    model = Sequential([Dense(3, activation="softmax", input_shape=(2,))])
    for optimizer, loss, name in [("rmsprop", Smoothed(), "Smoothed"), (Slow(), "categorical_crossentropy", "Slow")]:
        model.compile(optimizer=optimizer, loss=loss)
        with pytest.raises(TypeError, match=rf"Cannot save the settings of {name}: .*Give {name} a get_config\(\)"):
            model.save(tmp_path / "model.npz")
        assert not list(tmp_path.iterdir())  # nothing written

    class Labelled(CategoricalCrossentropy):
        def __init__(self, label="x"):
            super().__init__()
            self.label = label

        def get_config(self):
            return {"label": self.label}

    model.compile(loss=Labelled("digits"))
    model.save(tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz", custom_objects={"Labelled": Labelled})
    assert type(loaded.loss) is Labelled and loaded.loss.label == "digits"


# --- saving: the target and its folder ---------------------------------------------------
def test_saving_onto_a_folder_names_the_folder(tmp_path):
    model = small_model()
    folder = tmp_path / "model.npz"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        model.save(folder)
    assert str(info.value) == (f"Cannot save to {folder}: it is a folder. Give the path of a file, "
                               f"such as {folder / 'model.npz'}.")
    with pytest.raises(IsADirectoryError, match=f"Cannot save to {tmp_path}: it is a folder"):
        model.save(tmp_path)  # a folder without .npz: the folder is the problem, not the suffix
    assert os.listdir(tmp_path) == ["model.npz"] and os.listdir(folder) == []  # nothing written


def test_saving_into_a_folder_that_is_missing_or_a_file(tmp_path):
    model = small_model()
    with pytest.raises(FileNotFoundError) as info:
        model.save(tmp_path / "out" / "model.npz")
    assert str(info.value) == (f"Cannot save to {tmp_path / 'out' / 'model.npz'}: the folder {tmp_path / 'out'} "
                               "does not exist. Create the folder first (os.makedirs), or save somewhere else.")
    (tmp_path / "out").write_text("a file, not a folder")
    with pytest.raises(FileNotFoundError, match=f"the folder {tmp_path / 'out'} is a file, not a folder"):
        model.save(tmp_path / "out" / "model.npz")
    assert os.listdir(tmp_path) == ["out"]


# --- saving: nothing left behind by a crash ----------------------------------------------------
def temporary_files(folder):
    return sorted(name for name in os.listdir(folder) if ".tmp-" in name)


def dead_pid():
    """The number of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


posix_only = pytest.mark.skipif(os.name != "posix", reason="a killed save's temporary file is removed on POSIX only")


@posix_only
@pytest.mark.host_only("the saving process runs on NumPy")
def test_a_save_killed_midway_leaves_nothing_after_the_next_save(tmp_path):
    path = tmp_path / "model.npz"
    saver = ("import sys\n"
             "from tinynet.layers import Dense\n"
             "from tinynet.models import Sequential\n"
             "model = Sequential([Dense(4096, input_shape=(2048,), use_bias=False)])  # 32 MB of weights\n"
             "while True:\n"
             "    model.save(sys.argv[1])\n")
    for attempt in range(5):  # until a kill lands while a temporary file is being written
        process = subprocess.Popen([sys.executable, "-c", saver, str(path)], cwd=REPO)
        deadline = time.monotonic() + 60
        while not temporary_files(tmp_path) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, "the saving process ended by itself (see its error above)"
        left = temporary_files(tmp_path)
        if left:
            break
    assert left, "no save was killed while writing"
    assert all(name.startswith(atomic_write.temporary_prefix(path)) and f"-{process.pid}-" in name for name in left)
    small_model().save(path)  # the next save to the same target cleans up
    assert os.listdir(tmp_path) == ["model.npz"]
    assert load_model(path).count_params() == small_model().count_params()


@posix_only
@pytest.mark.host_only("files only")
def test_stale_temporary_files_of_the_target_are_removed_others_kept(tmp_path):
    path = tmp_path / "model.npz"
    prefix = atomic_write.temporary_prefix(path)
    stale = [f"{prefix}{dead_pid()}-0123abcd", f"{prefix}{dead_pid()}-deadbeef"]
    kept = [f"{prefix}{os.getpid()}-0123abcd",  # a save running now, in this process (another thread)
            f"{atomic_write.temporary_prefix(tmp_path / 'other.npz')}{dead_pid()}-0123abcd",  # another target's
            f".model.npz.tmp-some.other.host-{dead_pid()}-0123abcd",  # another machine's, on a shared disk
            f"{prefix}notes.txt"]  # not a temporary file of ours
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"PK\x03\x04 half an archive")
    small_model().save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["model.npz"])


# --- loading: every size checked before anything is allocated ------------------------------------
def mnist_sized_file(tmp_path):
    """A saved 784 -> 10 softmax model, compiled with RMSprop: a 31 KB file."""
    model = Sequential([Dense(10, activation="softmax", input_shape=(784,))])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "model.npz")
    return tmp_path / "model.npz"


def peak_allocation_of(function):
    """``function()``'s error and the most memory (bytes) Python and NumPy held at once while it ran."""
    tracemalloc.start()
    try:
        function()
    except Exception as error:
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    pytest.fail("no error")


@pytest.mark.parametrize("setting, message", [
    ({"units": 100_000}, r"Layer 'dense': kernel has shape \(784, 100000\), but the array given for it has "
                         r"shape \(784, 10\)"),
    ({"input_shape": [100_000]}, r"Layer 'dense': kernel has shape \(100000, 10\), but the array given for it"),
    ({"input_shape": [28, 28]}, r"Dense expects inputs of shape \(batch, features\)"),
])
def test_a_config_claiming_a_huge_layer_is_refused_before_allocating(tmp_path, setting, message):
    path = mnist_sized_file(tmp_path)
    rewrite(path, change_header=lambda h: h["config"]["layers"][0]["config"].update(setting))
    error, peak = peak_allocation_of(lambda: load_model(path))  # building would take 313 MB or more
    assert isinstance(error, ModelFileError) and str(error).startswith(f"{path}: ")
    assert re.search(message, str(error)), str(error)
    assert peak < 2_000_000


def npy_bytes(shape, data=b"", dtype="<f4"):
    """A .npy file's bytes: a header claiming ``shape``, then ``data``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    return header.getvalue() + data


def test_array_headers_that_claim_more_than_the_file_holds(tmp_path):
    path = mnist_sized_file(tmp_path)
    rewrite(path, change_header=lambda h: h["config"]["layers"][0]["config"].update(units=10_000_000))
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members["dense/kernel.npy"] = npy_bytes((784, 10_000_000), b"\0" * 31360)  # 31 GB claimed, 31 KB there
    with zipfile.ZipFile(path, "w") as z:  # the config agrees with the header's lie: only the bytes can tell
        for name, content in members.items():
            z.writestr(name, content)
    error, peak = peak_allocation_of(lambda: load_model(path))
    assert isinstance(error, ModelFileError) and peak < 2_000_000
    assert str(error) == (f"{path} is not a tinynet model file: it cannot be read as an .npz archive of plain "
                          "arrays (dense/kernel claims 31360000000 bytes of data, more than the archive holds "
                          "for it).")


def test_a_zip_directory_that_claims_more_than_its_bytes_can_unpack_to(tmp_path):
    path = tmp_path / "model.npz"
    data = npy_bytes((784, 10_000_000))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.npy", npy_bytes((), "{}".encode("utf-32-le"), "<U2"))
        z.writestr("dense/kernel.npy", data)
        z.getinfo("dense/kernel.npy").file_size = len(data) + 31_360_000_000  # written into the directory
    error, peak = peak_allocation_of(lambda: load_model(path))
    assert isinstance(error, ModelFileError) and peak < 2_000_000
    assert "dense/kernel claims 31360000000 bytes of data, more than the archive holds for it" in str(error)


def test_a_later_layer_whose_input_shape_disagrees(trained, tmp_path):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=trained,
            change_header=lambda h: h["config"]["layers"][1]["config"].update(input_shape=[99]))
    with pytest.raises(ModelFileError, match=r"layer 'dense_1' says its inputs have shape \(None, 99\), "
                                             r"but it receives \(None, 16\)"):
        load_model(path)


def test_two_layers_of_one_name(trained, tmp_path):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=trained,
            change_header=lambda h: h["config"]["layers"][1]["config"].update(name="dense"))
    with pytest.raises(ModelFileError, match=f"{re.escape(str(path))}: config.layers holds two layers named 'dense'"):
        load_model(path)


# --- loading: every setting of the wrong type is refused, naming its key and the file -----------------
def layer0(**change):
    return lambda h: h["config"]["layers"][0]["config"].update(change)


def optimizer(**change):
    return lambda h: h["compile_config"]["optimizer"]["config"].update(change)


COMPILE_FIX = "; load with compile=False and compile the model yourself."
BAD_SETTINGS = [
    (layer0(units="ten"),
     "config.layers[0] (Dense): units must be an integer of at least 1, got 'ten'."),
    (layer0(units=True),
     'config.layers[0] (Dense): units must be an integer of at least 1, got True.'),
    (layer0(units=16.0),
     'config.layers[0] (Dense): units must be an integer of at least 1, got 16.0.'),
    (layer0(units=0),
     'config.layers[0] (Dense): units must be an integer of at least 1, got 0.'),
    (layer0(activation=7),
     "config.layers[0] (Dense): Unknown activation 7. Known: relu, softmax, or 'linear' (or None), or a layer object such as tinynet.layers.ReLU()."),
    (layer0(use_bias="yes"),
     "config.layers[0] (Dense): use_bias must be True or False, got 'yes'."),
    (layer0(input_shape=6),
     'config.layers[0] (Dense): input_shape must be a tuple, one entry per axis: input_shape=(6,), not input_shape=6.'),
    (layer0(input_shape=[6, -1]),
     'config.layers[0] (Dense): each entry of input_shape must be an integer of at least 1, got -1.'),
    (layer0(name=3),
     "config.layers[0] (Dense): name must be a string such as 'hidden_1', got 3."),
    (layer0(dropout=0.5),
     "config.layers[0] (Dense): Dense.__init__() got an unexpected keyword argument 'dropout'."),
    (lambda h: h["config"]["layers"][2]["config"].pop("name"),
     'config.layers[2].config.name is missing.'),
    (lambda h: h["config"]["layers"].__setitem__(1, "Dense"),
     "config.layers[1] should be an object {...}, got 'Dense'."),
    (lambda h: h["config"]["layers"][1].update(trainable=True),
     'config.layers[1].trainable is not a setting tinynet knows (known: class_name, config).'),
    (lambda h: h["config"].update(layers=[]),
     'config.layers is empty; a model has at least one layer.'),
    (lambda h: h["config"].update(name=None),
     'config.name should be a string, got None.'),
    (lambda h: h.update(weights_url="http://example.com"),
     'weights_url is not a setting tinynet knows (known: class_name, compile_config, config, format, format_version, tinynet_version).'),
    (optimizer(learning_rate="fast"),
     "compile_config.optimizer (RMSprop): learning_rate must be a number above 0, such as 0.001, got 'fast'" + COMPILE_FIX),
    (optimizer(learning_rate=-0.1),
     'compile_config.optimizer (RMSprop): learning_rate must be a number above 0, such as 0.001, got -0.1' + COMPILE_FIX),
    (optimizer(rho=-1),
     'compile_config.optimizer (RMSprop): rho must be a number in [0, 1), such as 0.9, got -1' + COMPILE_FIX),
    (optimizer(epsilon=float("nan")),
     'compile_config.optimizer (RMSprop): epsilon must be a number above 0, such as 1e-7, got nan' + COMPILE_FIX),
    (optimizer(momentum=0.9),
     "compile_config.optimizer (RMSprop): RMSprop takes no argument momentum=0.9: it takes learning_rate, rho, epsilon" + COMPILE_FIX),
    (lambda h: h["compile_config"]["loss"]["config"].update(from_logits=1),
     'compile_config.loss (CategoricalCrossentropy): from_logits must be True or False, got 1' + COMPILE_FIX),
    (lambda h: h["compile_config"].update(metrics="accuracy"),
     "compile_config.metrics should be a list, got 'accuracy'" + COMPILE_FIX),
    (lambda h: h["compile_config"].pop("loss"),
     'compile_config.loss is missing' + COMPILE_FIX),
    (lambda h: h["compile_config"].update(steps_per_execution=0),
     'compile_config.steps_per_execution should be a whole number of at least 1, got 0' + COMPILE_FIX),
    (lambda h: h["compile_config"].update(steps_per_execution=True),
     'compile_config.steps_per_execution should be a whole number of at least 1, got True' + COMPILE_FIX),
]


@pytest.mark.host_only("reads files and checks settings: no arrays")
@pytest.mark.parametrize("change, message", BAD_SETTINGS, ids=[str(i) for i in range(len(BAD_SETTINGS))])
def test_settings_of_the_wrong_type_are_refused(tmp_path, change, message):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=small_model(), change_header=change)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.host_only("reads files and checks settings: no arrays")
def test_bad_compile_settings_are_not_read_with_compile_false(tmp_path):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=small_model(), change_header=optimizer(learning_rate="fast"))
    loaded = load_model(path, compile=False)  # the way out the message names
    assert loaded.optimizer is None and loaded.count_params() == small_model().count_params()


def test_errors_from_the_constructors_name_the_file(tmp_path):
    from tinynet.losses import MeanSquaredError

    class Huber(MeanSquaredError):
        def __init__(self, delta=1.0):
            super().__init__()
            if delta <= 0:
                raise ValueError(f"delta must be positive, got {delta}")
            self.delta = delta

        def get_config(self):
            return {"delta": self.delta}

    path = tmp_path / "model.npz"
    model = small_model()
    model.compile(loss=Huber(), metrics=["accuracy"])
    model.save(path)
    assert type(load_model(path, custom_objects={"Huber": Huber}).loss) is Huber
    rewrite(path, change_header=lambda h: h["compile_config"]["loss"]["config"].update(delta=-1))
    with pytest.raises(ModelFileError) as info:
        load_model(path, custom_objects={"Huber": Huber})
    assert str(info.value) == f"{path}: compile_config.loss (Huber): delta must be positive, got -1" + COMPILE_FIX
    rewrite(path, saved_from=model,
            change_header=lambda h: h["compile_config"].update(metrics=["accuracy", "precision"]))
    with pytest.raises(ModelFileError, match=f"{re.escape(str(path))}: compile_config.metrics: Unknown metric "
                                             "'precision'"):
        load_model(path, custom_objects={"Huber": Huber})


def test_a_deeply_nested_config(tmp_path):
    path = tmp_path / "model.npz"
    depth = 100_000
    np.savez(path, config=np.array('{"format": "tinynet", "config": ' + "[" * depth + "]" * depth + "}"))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (f"{path} is not a tinynet model file: its 'config' is JSON nested too deeply "
                               "to be an architecture.")


def test_weights_that_are_not_finite_are_neither_saved_nor_loaded(trained, tmp_path):
    path = tmp_path / "model.npz"
    trained.save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="holds NaN or infinity"):
        trained.layers[0].set_weights([np.full((6, 16), np.nan), np.zeros(16)])  # set_weights refuses NaN...
    trained.layers[0].params["kernel"][3, 2] = float("nan")  # ...so plant it as diverged training would
    with pytest.raises(ValueError) as info:
        trained.save(path)  # a diverged model would overwrite the good file
    assert str(info.value) == (f"Not saved to {path}: the weights dense/kernel hold NaN or infinite values "
                               "(training diverged: try a lower learning rate, or inputs scaled to 0..1).")
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]
    rewrite(path, change_arrays=lambda a: a.update({"dense_2/bias": np.array([0, np.inf, 0], "float32")}))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (f"{path}: the weights dense_2/bias hold NaN or infinite values: the file is "
                               "damaged, or was written from a model whose training diverged.")


def test_saving_into_a_folder_without_write_permission(tmp_path, monkeypatch):
    def refused(file, mode="r"):  # as open() answers in a read-only folder (root may write anywhere, so simulated)
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(atomic_write, "open", refused, raising=False)  # the module's open, not builtins.open
    with pytest.raises(PermissionError) as info:
        small_model().save(tmp_path / "model.npz")
    assert str(info.value) == f"Cannot write {tmp_path / 'model.npz'}: no permission to create files in {tmp_path}."
    assert os.listdir(tmp_path) == []


@pytest.mark.host_only("argument checks: no arrays")
def test_the_arguments_of_save_and_load_model(tmp_path):
    model = small_model()
    model.save(tmp_path / "good.npz")
    before = (tmp_path / "good.npz").read_bytes()
    with pytest.raises(TypeError, match="overwrite must be True or False, got 'no'"):
        model.save(tmp_path / "good.npz", overwrite="no")
    assert (tmp_path / "good.npz").read_bytes() == before
    for bad in (123, b"x.npz", None):
        with pytest.raises(TypeError, match="filepath must be a path"):
            model.save(bad)
        with pytest.raises(TypeError, match="filepath must be a path"):
            load_model(bad)
    with pytest.raises(IsADirectoryError, match="is a folder, not a model file"):
        load_model(tmp_path)
    with pytest.raises(TypeError, match="custom_objects must be a dict"):
        load_model(tmp_path / "good.npz", custom_objects=5)
    with pytest.raises(TypeError, match="compile must be True or False"):
        load_model(tmp_path / "good.npz", compile="no")


def test_a_metric_with_a_name_of_its_own_cannot_be_saved(tmp_path):
    from tinynet.metrics import Accuracy

    model = small_model()
    model.compile(loss="categorical_crossentropy", metrics=[Accuracy(name="my_acc")])
    with pytest.raises(TypeError, match="Cannot save the metric named 'my_acc'"):
        model.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


# --- layers of your own: their settings are saved, or the save is refused (as in Keras 3) --------------
class Scale(Layer):
    """y = factor * x: a layer with a setting, and (in this first version) no get_config."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def forward(self, x):
        return self.factor * x


class SavedScale(Scale):
    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Sigmoid(Layer):
    """The guide's activation of your own: y = 1 / (1 + exp(-x))."""

    def forward(self, x):
        self.y = 1 / (1 + backend.xp().exp(-x))
        return self.y


def test_a_layer_whose_settings_get_config_omits_is_not_saved(tmp_path):
    path = tmp_path / "model.npz"
    small_model().save(path)
    before = path.read_bytes()
    model = Sequential([Dense(3, input_shape=(2,)), Scale(2.5, name="scale")])
    with pytest.raises(TypeError, match=r"Cannot save the settings of layer 'scale' \(Scale\): its __init__ takes "
                                        r"factor, which get_config\(\) does not return\. Give Scale a get_config\(\) "
                                        r"returning its __init__ arguments, such as \{\*\*super\(\)\.get_config\(\), "
                                        r"'factor': self\.factor\}"):
        model.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]

    model = Sequential([Dense(3, input_shape=(2,)), SavedScale(2.5)])
    model.save(path)
    loaded = load_model(path, custom_objects={"SavedScale": SavedScale})
    assert loaded.layers[1].factor == 2.5
    x = np.ones((2, 2), "float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_get_config_that_its_constructor_cannot_take_back_is_not_saved(tmp_path):
    class Fixed(Layer):
        def __init__(self, factor=1.0):  # no **kwargs: cls(**config) would fail on name and input_shape
            super().__init__()
            self.factor = factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    class Halved(SavedScale):
        def get_config(self):
            return {**super().get_config(), "factor": np.float32(self.factor)}  # JSON cannot hold it

    model = Sequential([Dense(3, input_shape=(2,)), Fixed(2.0)])
    with pytest.raises(TypeError, match=r"get_config\(\) returns name, trainable, input_shape, which its __init__ does not "
                                        r"take\. Add \*\*kwargs to Fixed\.__init__"):
        model.save(tmp_path / "model.npz")
    model = Sequential([Dense(3, input_shape=(2,)), Halved(0.5)])
    with pytest.raises(TypeError, match=r"Cannot save layer 'halved' \(Halved\)'s setting factor=.*Python's float"):
        model.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_an_activation_of_your_own_saves_and_loads_with_custom_objects(tmp_path):
    path = tmp_path / "model.npz"
    model = Sequential([Dense(4, activation=Sigmoid(), input_shape=(3,)), Dense(2, activation="softmax")])
    model.save(path)
    with pytest.raises(ModelFileError, match=r"config\.layers\[0\]\.config\.activation: unknown class 'Sigmoid'.*"
                                             r"custom_objects=\{'Sigmoid': Sigmoid\}"):
        load_model(path)
    loaded = load_model(path, custom_objects={"Sigmoid": Sigmoid})
    assert type(loaded.layers[0].activation) is Sigmoid
    x = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    class Steep(Scale):  # an activation with a setting get_config omits: refused, as a layer is
        def forward(self, x):
            return 1 / (1 + backend.xp().exp(-self.factor * x))

    with pytest.raises(TypeError, match=r"Cannot save the settings of the activation Steep of layer 'dense': "
                                        r"its __init__ takes factor"):
        Sequential([Dense(4, activation=Steep(3.0), input_shape=(3,))]).save(tmp_path / "steep.npz")
    assert not (tmp_path / "steep.npz").exists()


@pytest.mark.parametrize("name, why", [("a\x00b", r"it holds '\\x00'"), ("a/b", "it holds '/'"), ("", "it is empty"),
                                       ("n" * 65536, "65,536 characters, more than 255")],
                         ids=["NUL", "slash", "empty", "65536-characters"])
def test_a_layer_name_a_file_cannot_hold_is_refused(tmp_path, name, why):
    with pytest.raises(ValueError, match=f"name must be 1 to 255 characters without '/'.*: {why}"):
        Dense(2, name=name)
    path = tmp_path / "model.npz"
    model = small_model()
    model.save(path)
    before = path.read_bytes()
    model.layers[1].name = name  # renamed by hand afterwards: refused at save, before anything is written
    with pytest.raises(ValueError, match=f"Cannot save to .*model.layers\\[1\\].name must be .*{why}.* Rename it: "
                                         r"model.layers\[1\].name = 'layer_1'"):
        model.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_a_file_naming_the_base_class_layer(trained, tmp_path):
    path = tmp_path / "model.npz"
    rewrite(path, saved_from=trained, change_header=lambda h: h["config"]["layers"][2].update(class_name="Layer"))
    with pytest.raises(ModelFileError, match=r"config\.layers\[2\]: unknown class 'Layer' \(known: "
                                             r"BatchNormalization, Conv2D, Dense, .*Softmax\)"):
        load_model(path)


def test_custom_objects_must_be_classes(trained, tmp_path):
    trained.save(tmp_path / "model.npz")
    for value in (Scale(2.0), "Scale", np.exp, int):
        with pytest.raises(TypeError, match=r"custom_objects\['Scale'\] must be a class of your own \(a Layer, "
                                            r"Optimizer or Loss\)"):
            load_model(tmp_path / "model.npz", custom_objects={"Scale": value})


# --- files: links, devices, full disks, and files that keep changing -------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="symbolic links need privileges on Windows")
def test_saving_onto_a_symbolic_link_replaces_the_file_it_points_to(trained, tmp_path):
    (tmp_path / "models").mkdir()
    target, link = tmp_path / "models" / "v1.npz", tmp_path / "latest.npz"
    small_model(seed=5).save(target)
    link.symlink_to(target)
    trained.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)  # still the link, to the same file
    np.testing.assert_array_equal(load_model(target).get_weights()[0], trained.get_weights()[0])
    assert os.listdir(tmp_path / "models") == ["v1.npz"]


def test_a_full_disk_names_the_file_and_leaves_the_old_one(trained, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    small_model(seed=5).save(path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_write.os, "fsync", full)
    with pytest.raises(OSError) as info:
        trained.save(path)
    assert info.value.errno == 28
    assert str(info.value) == (f"[Errno 28] Cannot write {path}: No space left on device "
                               "(a file already there is left unchanged)")
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.skipif(not os.path.exists("/dev/zero") or not hasattr(os, "mkfifo"), reason="POSIX devices and pipes")
def test_a_device_or_a_pipe_is_said_to_be_one(tmp_path):
    (tmp_path / "zero.npz").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.npz")  # opening it would wait for a writer: it is never opened
    for name, kind in [("zero.npz", "a device"), ("pipe.npz", "a pipe")]:
        with pytest.raises(ModelFileError, match=f"{name} is not a model file but {kind}: give the path of the .npz"):
            load_model(tmp_path / name)


def test_a_file_of_twenty_thousand_extra_arrays_gets_a_short_error(trained, tmp_path):
    path = tmp_path / "model.npz"
    extra = {f"extra/{i}": np.zeros(1) for i in range(20000)}
    rewrite(path, saved_from=trained, change_arrays=lambda arrays: arrays.update(extra))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert re.search(r"missing none, unexpected \['extra/0', 'extra/1', 'extra/2', 'extra/3', 'extra/4', "
                     r"\.\.\. 19995 more\]", str(info.value))
    assert len(str(info.value)) < 300 + len(str(path))


def test_loading_reads_one_file_while_a_save_renames_another_onto_its_path(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    first, second = small_model(seed=1), small_model(seed=2, compile=False)
    first.save(path)
    open_archive = saving.npz.open_archive

    def save_meanwhile(file):  # the file is open: another process now saves a new model onto its path
        second.save(path)
        return open_archive(file)

    monkeypatch.setattr(saving.npz, "open_archive", save_meanwhile)
    loaded = load_model(path)  # the file as it was opened: the first model, whole
    np.testing.assert_array_equal(loaded.get_weights()[0], first.get_weights()[0])
    assert loaded.loss is not None  # compiled, as the first model was
    monkeypatch.undo()
    assert load_model(path).loss is None  # the path now holds the second, uncompiled


@pytest.mark.host_only("threads saving and loading on NumPy")
def test_loading_while_another_thread_saves_in_a_loop(tmp_path):
    import threading

    path = tmp_path / "model.npz"
    models = [small_model(seed=1), small_model(seed=2)]
    models[0].save(path)
    done, failures = threading.Event(), []

    def keep_saving():
        for i in range(10000):
            if done.is_set():
                break
            models[i % 2].save(path)

    saver = threading.Thread(target=keep_saving)
    saver.start()
    try:
        for _ in range(400):
            try:
                weights = load_model(path, compile=False).get_weights()[0]
            except Exception as e:  # noqa: BLE001: any failure is what this test looks for
                failures.append(repr(e))
            else:
                assert any(np.array_equal(weights, m.get_weights()[0]) for m in models)
    finally:
        done.set()
        saver.join()
    assert failures == []
