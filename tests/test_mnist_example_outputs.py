"""Tests for what examples/mnist.py writes with --plots and --save (without training on all of MNIST)."""
import importlib.util
from pathlib import Path

import pytest
from PIL import Image

import tinynet

host = pytest.mark.host_only("argument checking only")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("mnist_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
