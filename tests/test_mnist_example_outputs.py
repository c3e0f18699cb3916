"""Tests for what examples/mnist.py writes with --plots and --save (without training on all of MNIST)."""

import pytest
from PIL import Image

import tinynet
from conftest import load_example

host = pytest.mark.host_only("argument checking only")



@pytest.fixture(scope="module")
def example():
    return load_example("mnist")


def test_write_plots_writes_the_four_pictures(example, mnist_model, tmp_path, capsys):
    model, x_valid, y_valid = mnist_model
    x = x_valid.reshape(10000, 784) / 255  # prepared as the example prepares its data
    y = tinynet.utils.to_categorical(y_valid, 10)
    history = tinynet.callbacks.History()
    history.append(0, {"accuracy": 0.9, "loss": 0.3, "val_accuracy": 0.91, "val_loss": 0.28})
    folder = tmp_path / "new" / "plots"
    example.write_plots(str(folder), x[:100], y[:100], x[:1000], y[:1000], model, history)
    names = ["digits.png", "training_curves.png", "confusion_matrix.png", "mistakes.png"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    for name in names:
        with Image.open(folder / name) as png:
            assert png.format == "PNG" and min(png.size) > 200
    assert capsys.readouterr().out.split() == [str(folder / name) for name in names]


@host
def test_save_must_be_npz_before_any_training(example, capsys):
    with pytest.raises(SystemExit) as info:
        example.main(["--save", "model.h5"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--save" in err and ".npz" in err


@pytest.fixture
def a_file(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    return file


# Each mistake is refused by argparse (exit 2, the flag and the fix on stderr) before MNIST is loaded.
@host
@pytest.mark.parametrize("args, says", [
    (["--epochs", "0"], "--epochs must be 1 or more, got 0"),
    (["--epochs", "-1"], "--epochs must be 1 or more, got -1"),
    (["--batch-size", "0"], "--batch-size must be 1 or more, got 0"),
    (["--seed", "-5"], "--seed must be from 0 to 2**32 - 1, got -5"),
    (["--seed", str(2**32)], "--seed must be from 0 to 2**32 - 1"),
    (["--save", "{file}/m.npz"], "--save '{file}/m.npz': {file} is a file, not a folder"),
    (["--save", "{file}/deeper/m.npz"], "--save '{file}/deeper/m.npz': {file} is a file, not a folder"),
    (["--save", ".npz"], "--save '.npz': give a file name ending in .npz, like model.npz"),
    (["--save", "m.NPZ"], "--save 'm.NPZ': give a file name ending in .npz"),
    (["--save", ""], "--save '': give a file name, like model.npz"),
    (["--save", "{tmp}"], "--save '{tmp}': that is a folder: give a file name in it, like {tmp}/model.npz"),
    (["--plots", "{file}"], "--plots '{file}': that is a file, not a folder"),
    (["--plots", "{file}/pictures"], "--plots '{file}/pictures': {file} is a file, not a folder"),
    (["--plots", ""], "--plots '': give the name of a folder"),
    (["--data-dir", "{tmp}/nofolder"], "--data-dir '{tmp}/nofolder' does not exist"),
    (["--data-dir", "{file}"], "--data-dir '{file}' is a file, not a folder"),
])
def test_a_mistake_is_an_argparse_error_before_mnist_is_loaded(example, capsys, tmp_path, a_file, args, says):
    where = {"file": a_file, "tmp": tmp_path}
    with pytest.raises(SystemExit) as info:
        example.main([arg.format(**where) for arg in args])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""  # not even the device: nothing ran
    assert f": error: {says.format(**where)}" in err


@host
def test_the_folders_of_save_and_plots_may_be_missing_and_are_not_made_before_training(example, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:  # stopped by the last check, after --save and --plots passed theirs
        example.main(["--save", str(tmp_path / "new" / "m.npz"), "--plots", str(tmp_path / "pics"),
                      "--data-dir", str(tmp_path / "nofolder")])
    assert info.value.code == 2 and "--data-dir" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@host
@pytest.mark.parametrize("junk", ["missing", "damaged"])
def test_bad_mnist_files_in_data_dir_are_named_with_the_flag(example, capsys, tmp_path, junk):
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    for name in names[:1] if junk == "missing" else names:
        (tmp_path / name).write_bytes(b"junk")
    with pytest.raises(SystemExit) as info:
        example.main(["--data-dir", str(tmp_path), "--device", "cpu"])
    assert info.value.code == 1
    out, err = capsys.readouterr()
    assert f": error: --data-dir {tmp_path}: " in err.splitlines()[0]
    assert ("MNIST files missing" if junk == "missing" else "is not the MNIST file it should be") in err
    assert err.rstrip().endswith("or leave out --data-dir.") and "load_data()" not in err
    assert "2. Flatten" not in out


def no_space(*args):
    raise OSError(28, "No space left on device")


@host
def test_a_full_disk_at_save_is_said_before_training(example, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(example.checks.os, "fsync", no_space)  # the check writes a little there first
    with pytest.raises(SystemExit) as info:
        example.main(["--save", str(tmp_path / "m.npz")])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and (f"error: --save '{tmp_path / 'm.npz'}': cannot write in {tmp_path} "
                          "(No space left on device): free some space, or pick another place") in err
    assert list(tmp_path.iterdir()) == []


@host
def test_a_save_that_fails_after_training_keeps_the_model_in_a_temporary_file(example, tmp_path, capsys,
                                                                              monkeypatch):
    from tinynet.layers import Dense
    from tinynet.models import Sequential, load_model, saving

    model = Sequential([Dense(2, input_shape=(3,))])
    write = saving.write_atomically

    def fills_up(path, contents):  # the disk filled up during training: the first save fails
        if path.parent == tmp_path:
            raise OSError(28, f"Cannot write {path}: No space left on device")
        write(path, contents)

    monkeypatch.setattr(saving, "write_atomically", fills_up)
    monkeypatch.setattr(example.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    problem = example.save(model, str(tmp_path / "m.npz"))
    [kept] = (tmp_path / "tmp").iterdir()
    assert problem == (f"the model could not be saved ([Errno 28] Cannot write {tmp_path / 'm.npz'}: No space left "
                       f"on device). It was saved to {kept} instead: move it where you want it.")
    assert kept.suffix == ".npz" and load_model(kept).get_weights()[0].tolist() == model.get_weights()[0].tolist()
    assert not (tmp_path / "m.npz").exists() and capsys.readouterr().out == ""

    monkeypatch.setattr(saving, "write_atomically", lambda path, contents: no_space())  # nowhere at all
    problem = example.save(model, str(tmp_path / "m.npz"))
    assert problem.startswith("the model could not be saved (") and problem.endswith("): it is lost.")
    assert list((tmp_path / "tmp").iterdir()) == [kept]  # no empty file left for the second try
