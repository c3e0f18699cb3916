"""Tests for examples/mnist_cnn.py, Keras's "Simple MNIST convnet": its models, a short run, its argument checks."""

import numpy as np
import pytest

import tinynet
from conftest import load_example, mnist_dir



@pytest.fixture(scope="module")
def example():
    return load_example("mnist_cnn")


@pytest.fixture(scope="module")
def sample():
    """The first 256 training images and labels, prepared as the example prepares them (NumPy)."""
    from tinynet.datasets import mnist
    (x, y), _ = mnist.load_data(mnist_dir())
    return x[:256], y[:256]


def summary_of(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def test_the_simple_model_is_kerass_with_34826_params(example):
    text = summary_of(example.build_model("simple"))
    assert "Total params: 34,826 (136.04 KB)" in text and "Non-trainable params: 0 (0.00 B)" in text
    assert "(None, 5, 5, 64)" in text and "(None, 1600)" in text and "16,010" in text


def test_the_deep_model_counts_batch_normalizations_moving_statistics_as_non_trainable(example):
    text = summary_of(example.build_model("deep"))  # 2 * (32 + 64 + 128) moving means and variances
    assert "Total params: 1,147,786" in text and "Trainable params: 1,147,338" in text
    assert "Non-trainable params: 448 (1.75 KB)" in text and "(None, 4, 4, 128)" in text


@pytest.mark.parametrize("kind", ["simple", "deep"])
def test_the_loss_falls_on_a_small_slice(example, sample, kind):
    x, y = example.prepare(*sample)  # (256, 28, 28, 1) in 0..1, one-hot labels
    assert x.shape == (256, 28, 28, 1) and x.dtype == np.float32 and x.max() == 1.0 and y.shape == (256, 10)
    tinynet.utils.set_random_seed(0)
    model = example.build_model(kind)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)[0]
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0, validation_split=0.1)
    after = model.evaluate(x, y, verbose=0)[0]
    assert np.isfinite(before) and after < before - 0.05, (before, after)
    assert len(history.history["val_loss"]) == 2


@pytest.mark.host_only("runs the script on NumPy (--device cpu); the models run on every backend above")
def test_a_short_run_prints_kerass_lines_and_saves_a_model_that_loads(example, tmp_path, capsys):
    path = tmp_path / "out" / "cnn.npz"
    history, score = example.main(["--limit", "256", "--epochs", "1", "--seed", "0", "--device", "cpu",
                                   "--data-dir", str(mnist_dir()), "--save", str(path)])
    out = capsys.readouterr().out
    assert "x_train shape: (256, 28, 28, 1)" in out and "Total params: 34,826" in out
    assert f"Test loss: {score[0]}" in out and f"Test accuracy: {score[1]}" in out
    assert "2/2" in out and "val_accuracy" in out  # 230 images in batches of 128; 26 held out
    loaded = tinynet.models.load_model(str(path))
    assert loaded.count_params() == 34826 and loaded.output_shape == (None, 10)


@pytest.mark.host_only("argument checking only")
@pytest.mark.parametrize("argv, flag", [(["--epochs", "0"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
                                        (["--limit", "5"], "--limit"), (["--seed", "-1"], "--seed"),
                                        (["--save", "model.txt"], "--save"), (["--model", "huge"], "--model"),
                                        (["--data-dir", "/no/such/folder"], "--data-dir")])
def test_bad_arguments_stop_before_any_work(example, argv, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        example.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Load the data" not in err
