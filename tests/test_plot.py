"""Tests for tinynet.plot: what each figure holds, and the PNGs it writes, without a display."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image

from tinynet import plot
from tinynet.callbacks import History
from tinynet.plot.confusion_matrix import confusion_counts
from tinynet.utils import to_categorical

pytestmark = pytest.mark.host_only("plots read NumPy data on the host")

RED = to_rgba("red")


def digits(n=12, seed=0):
    """n random 'images', flat like the training data (784 numbers in 0..1), and labels 0..9."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 784)), np.arange(n) % 10


def assert_png(path, fig):
    """A non-empty PNG, as large as the figure at 100 dpi."""
    path = Path(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as png:
        for pixels, inches in zip(png.size, fig.get_size_inches()):
            assert abs(pixels - inches * 100) <= 1
        assert np.asarray(png.convert("L")).std() > 10  # something is drawn on it


def is_red(ax):
    frame = ax.spines["top"]
    return ax.title.get_color() == "red" and frame.get_visible() and to_rgba(frame.get_edgecolor()) == RED


# --- image_grid --------------------------------------------------------------------------
def test_image_grid_of_labelled_images(tmp_path):
    x, labels = digits(40)
    fig = plot.image_grid(x, labels, path=tmp_path / "grid.png")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 40
    assert all(len(ax.images) == 1 and ax.images[0].get_array().shape == (28, 28) for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == [str(y) for y in labels]
    assert not any(is_red(ax) for ax in fig.axes)
    assert fig.get_suptitle() == "40 images with their labels"
    assert fig.axes[30].get_subplotspec().get_geometry()[:2] == (4, 10)  # 4 rows of 10
    assert_png(tmp_path / "grid.png", fig)


def test_image_grid_marks_wrong_predictions():
    x, labels = digits(6)
    probabilities = to_categorical(labels, 10) * 0.9 + 0.01
    probabilities[[1, 4]] = to_categorical([7, 0], 10)  # two wrong: 1 read as 7, 4 as 0
    fig = plot.image_grid(x.reshape(6, 28, 28), to_categorical(labels, 10), probabilities)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["0", "7 (true 1)", "2", "3", "0 (true 4)", "5"]
    assert [is_red(ax) for ax in fig.axes] == [False, True, False, False, True, False]
    assert not fig.axes[0].spines["top"].get_visible()
    assert "2 wrong" in fig.get_suptitle()


def test_image_grid_of_predictions_alone_and_without_labels():
    x, labels = digits(3)
    assert [ax.get_title() for ax in plot.image_grid(x, predictions=[4, 5, 6]).axes] == ["4", "5", "6"]
    fig = plot.image_grid(x, title="Three")
    assert [ax.get_title() for ax in fig.axes] == ["", "", ""] and fig.get_suptitle() == "Three"


def test_image_grid_errors():
    x, labels = digits(4)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        plot.image_grid(x, labels[:3])
    with pytest.raises(ValueError, match="square"):
        plot.image_grid(np.zeros((4, 780)))
    with pytest.raises(ValueError, match="class numbers"):
        plot.image_grid(x, np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="No images"):
        plot.image_grid(np.zeros((0, 784)))


def test_a_grid_of_one_image_is_wide_enough_for_its_title():
    x, labels = digits(1)
    fig = plot.image_grid(x, labels, [3])
    assert fig.get_suptitle() == "Predictions on 1 image: 1 wrong (in red, with the true label)"
    assert fig.get_figwidth() >= 0.085 * len(fig.get_suptitle())


# --- training_curves -----------------------------------------------------------------------
def history(epochs=3, validation=True):
    h = History()
    for epoch in range(epochs):
        logs = {"accuracy": 0.8 + 0.05 * epoch, "loss": 0.5 / (epoch + 1)}
        if validation:
            logs.update(val_accuracy=0.85 + 0.03 * epoch, val_loss=0.4 / (epoch + 1))
        h.append(epoch, logs)
    return h


def test_training_curves_from_a_history(tmp_path):
    h = history()
    fig = plot.training_curves(h, path=tmp_path / "curves.png")
    loss, accuracy = fig.axes
    assert (loss.get_title(), accuracy.get_title()) == ("loss", "accuracy")  # loss first
    assert loss.get_xlabel() == "epoch" and accuracy.get_ylabel() == "accuracy"
    assert [line.get_label() for line in accuracy.get_lines()] == ["training accuracy", "validation accuracy"]
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["training loss", "validation loss"]
    train, valid = loss.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(train.get_ydata(), h.history["loss"])
    np.testing.assert_allclose(valid.get_ydata(), h.history["val_loss"])
    assert fig.get_suptitle() == "Training curves (3 epochs)"
    assert_png(tmp_path / "curves.png", fig)


def test_training_curves_from_a_dict_without_validation_and_one_epoch():
    fig = plot.training_curves(history(1, validation=False).history)
    assert [len(ax.get_lines()) for ax in fig.axes] == [1, 1]
    assert fig.axes[0].get_lines()[0].get_marker() == "o"  # one epoch is still visible: a dot
    with pytest.raises(ValueError, match="no metrics"):
        plot.training_curves(History())


# --- confusion_matrix ----------------------------------------------------------------------
LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
PREDICTED = [0, 0, 1, 1, 1, 2, 2, 2, 0, 2]


def test_confusion_counts():
    counts = confusion_counts(LABELS, to_categorical(PREDICTED, 3))
    np.testing.assert_array_equal(counts, [[2, 1, 0], [0, 2, 0], [1, 0, 4]])
    assert confusion_counts([0, 1], [1, 0], num_classes=10).shape == (10, 10)
    with pytest.raises(ValueError, match="2 labels but 3 predictions"):
        confusion_counts([0, 1], [0, 1, 1])


def test_confusion_matrix_figure(tmp_path):
    fig = plot.confusion_matrix(to_categorical(LABELS, 3), np.array(PREDICTED), path=tmp_path / "cm.png")
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert len(ax.images) == 1 and ax.images[0].get_array().shape == (3, 3)
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells == {(0, 0): "2", (0, 1): "1", (1, 1): "2", (2, 0): "1", (2, 2): "4"}  # (true, predicted)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert ax.get_title() == "Confusion matrix: 8 of 10 right (80.0%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert_png(tmp_path / "cm.png", fig)


# --- mistakes ------------------------------------------------------------------------------
def test_mistakes_most_confident_first(tmp_path):
    x, labels = digits(10)
    probabilities = to_categorical(labels, 10) * 0.91 + 0.01
    for i, (wrong, p) in enumerate([(3, 0.6), (5, 0.95), (8, 0.8)]):  # images 0, 1, 2 are wrong
        probabilities[i] = (1 - p) / 9
        probabilities[i, wrong] = p
    fig = plot.mistakes(x, labels, probabilities, path=tmp_path / "mistakes.png")
    assert len(fig.axes) == 3 and all(len(ax.images) == 1 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["pred 5 (95.0%)\ntrue 1", "pred 8 (80.0%)\ntrue 2",
                                                   "pred 3 (60.0%)\ntrue 0"]
    assert all(is_red(ax) for ax in fig.axes)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), x[1].reshape(28, 28))
    assert fig.get_suptitle() == "The 3 most confident mistakes (of 3 in 10 images)"
    assert_png(tmp_path / "mistakes.png", fig)
    assert len(plot.mistakes(x, labels, probabilities, count=2).axes) == 2


def test_no_mistakes():
    x, labels = digits(5)
    fig = plot.mistakes(x, to_categorical(labels, 10), to_categorical(labels, 10))
    assert fig.axes == [] and fig.get_suptitle() == "No mistakes in 5 images"
    with pytest.raises(ValueError, match="one row per image"):
        plot.mistakes(x, labels, labels)


# --- headless ------------------------------------------------------------------------------
def test_plots_need_no_display_and_leave_pyplot_alone(tmp_path):
    script = f"""
import sys
import numpy as np
import tinynet
from tinynet.callbacks import History
h = History(); h.append(0, {{"loss": 0.3, "accuracy": 0.9}})
x, y = np.random.rand(4, 784), np.array([0, 1, 2, 3])
tinynet.plot.image_grid(x, y, path="{tmp_path}/a.png")
tinynet.plot.training_curves(h, path="{tmp_path}/b.png")
tinynet.plot.confusion_matrix(y, y, path="{tmp_path}/c.png")
tinynet.plot.mistakes(x, y, np.eye(4)[[1, 1, 2, 3]], path="{tmp_path}/d.png")
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "c.png", "d.png"]
