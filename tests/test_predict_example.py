"""Tests for examples/predict.py: a saved model reads digits drawn here and validation images."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ONE, SEVEN, draw_digit, load_example, png_claiming, transparent

host = pytest.mark.host_only("no model is built in this process")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "predict.py"
LINE = re.compile(r"(?P<name>.+): (?P<digits>\d) \((?P<p1>[\d.]+)%\), \d \((?P<p2>[\d.]+)%\), \d \((?P<p3>[\d.]+)%\)")




@pytest.fixture(scope="module")
def predict():
    return load_example("predict").main


@pytest.fixture
def model_file(tmp_path, mnist_model):
    path = tmp_path / "model.npz"
    mnist_model[0].save(path)
    return path


@pytest.fixture
def pictures(tmp_path, mnist_model):
    """Two drawn digits (black on white, one as JPEG) and three validation images (white on black)."""
    _, x_valid, y_valid = mnist_model
    files = {tmp_path / "one.png": 1, tmp_path / "seven.jpg": 7}
    Image.fromarray(draw_digit(ONE, 300, 400)).save(tmp_path / "one.png")
    Image.fromarray(draw_digit(SEVEN, 500, 500)).save(tmp_path / "seven.jpg")
    for i in range(3):
        files[tmp_path / f"valid{i}.png"] = int(y_valid[i])
        Image.fromarray(x_valid[i]).save(tmp_path / f"valid{i}.png")
    return files


def test_prints_the_top_three_for_each_picture(predict, model_file, pictures, capsys):
    assert predict([str(model_file), *map(str, pictures)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(pictures)
    for line, (path, digit) in zip(lines, pictures.items()):
        match = LINE.fullmatch(line)
        assert match, line
        assert match["name"] == str(path) and int(match["digits"]) == digit
        p1, p2, p3 = (float(match[k]) for k in ("p1", "p2", "p3"))
        assert 100 >= p1 >= p2 >= p3 >= 0 and p1 + p2 + p3 <= 100.2


def test_probabilities_are_the_reloaded_models(predict, model_file, pictures, mnist_model, capsys):
    from tinynet.utils.digits import load_digit

    path = next(iter(pictures))
    predict([str(model_file), str(path)])
    p = mnist_model[0].predict(load_digit(path).reshape(1, 784), verbose=0)[0]
    best = np.argsort(-p)[:3]
    assert capsys.readouterr().out == f"{path}: " + ", ".join(f"{k} ({p[k]:.1%})" for k in best) + "\n"


def test_show_writes_the_inputs_as_a_picture(predict, model_file, pictures, tmp_path, capsys):
    predict([str(model_file), *map(str, pictures), "--show", str(tmp_path / "inputs.png")])
    assert (tmp_path / "inputs.png").read_bytes()[:4] == b"\x89PNG"
    assert "inputs.png" in capsys.readouterr().out


def test_bad_images_are_reported_and_the_rest_still_read(predict, model_file, pictures, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not a picture")
    good = next(iter(pictures))
    status = predict([str(model_file), str(tmp_path / "missing.png"), str(tmp_path / "notes.png"), str(good)])
    out, err = capsys.readouterr()
    assert status == 1
    assert out.startswith(f"{good}: 1 (")
    assert f"{tmp_path / 'missing.png'}: error: No such image file" in err
    assert f"{tmp_path / 'notes.png'}: error: Cannot read" in err


@host
def test_a_missing_or_wrong_model_file(predict, pictures, tmp_path, capsys):
    image = str(next(iter(pictures)))
    with pytest.raises(SystemExit) as info:
        predict([str(tmp_path / "nothing.npz"), image])
    assert info.value.code == 2 and "No such model file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        predict([image, image])  # a picture given as the model
    assert info.value.code == 2 and "is not a tinynet model file" in capsys.readouterr().err


@host
def test_runs_as_a_script(model_file, pictures):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLE.parents[1]), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(EXAMPLE), str(model_file), str(next(iter(pictures)))],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert LINE.fullmatch(result.stdout.strip())["digits"] == "1"


def test_pictures_people_really_have(predict, model_file, tmp_path, capsys):
    """White ink on a transparent sheet and a dim 16-bit scan are read; a huge photo and a cut-off file are
    reported, and the pictures after them are still read."""
    white = tmp_path / "white-on-transparent.png"
    Image.fromarray(transparent(draw_digit(ONE, 300, 400), (255, 255, 255))).save(white)
    scan = tmp_path / "scan16.png"
    gray = np.asarray(Image.fromarray(draw_digit(SEVEN, 500, 500)).convert("L")) / 255
    Image.fromarray((20000 + gray * 20000).astype(np.uint16)).save(scan)  # every value above 255
    huge, cut = tmp_path / "huge.png", tmp_path / "cut.png"
    huge.write_bytes(png_claiming(20000, 15000))
    cut.write_bytes(white.read_bytes()[:200])
    status = predict([str(model_file), str(huge), str(white), str(cut), str(scan)])
    out, err = capsys.readouterr()
    assert status == 1  # a picture failed
    assert [LINE.fullmatch(line)["name"] for line in out.splitlines()] == [str(white), str(scan)]
    assert [LINE.fullmatch(line)["digits"] for line in out.splitlines()] == ["1", "7"]
    errors = err.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"{huge}: error: {huge} is too large to decode safely: 300,000,000 pixels")
    assert errors[1].startswith(f"{cut}: error: Cannot read {cut} as an image")
    assert "Traceback" not in err


@host
@pytest.mark.parametrize("show, says", [
    ("inputs.npz", "--show 'inputs.npz': give a file name ending in one of .eps, .jpeg, .jpg, .pdf, .png"),
    (".png", "--show '.png': give a file name ending in one of"),
    ("", "--show '': give a file name, like inputs.png"),
    ("{file}/inputs.png", "--show '{file}/inputs.png': {file} is a file, not a folder: pick another place"),
    ("{tmp}", "--show '{tmp}': that is a folder: give a file name in it, like {tmp}/inputs.png"),
])
def test_a_show_path_that_cannot_be_written_is_refused_before_anything_is_read(predict, tmp_path, capsys,
                                                                                show, says):
    file = tmp_path / "notes.txt"
    file.write_text("a file, not a folder")
    with pytest.raises(SystemExit) as info:  # before the model is even opened: it does not exist
        predict([str(tmp_path / "nothing.npz"), "digit.png", "--show", show.format(file=file, tmp=tmp_path)])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert ": error: " + says.format(file=file, tmp=tmp_path) in err


def test_show_makes_its_folder_and_writes_any_format_matplotlib_can(predict, model_file, pictures, tmp_path,
                                                                    capsys):
    show = tmp_path / "new" / "folder" / "inputs.PDF"
    assert predict([str(model_file), str(next(iter(pictures))), "--show", str(show)]) == 0
    assert show.read_bytes()[:5] == b"%PDF-"


@host
def test_a_model_that_is_no_mnist_classifier_is_refused_before_any_picture(predict, pictures, tmp_path, capsys):
    from tinynet.layers import Dense
    from tinynet.models import Sequential

    Sequential([Dense(3, input_shape=(4,))]).save(tmp_path / "small.npz")
    with pytest.raises(SystemExit) as info:
        predict([str(tmp_path / "small.npz"), str(next(iter(pictures)))])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert err.startswith(f"error: {tmp_path / 'small.npz'}: expected an MNIST classifier, 784 inputs -> 10")
    assert "got inputs (None, 4) and outputs (None, 3)" in err and "python examples/mnist.py --save" in err


@host
def test_a_device_given_as_a_picture_is_not_called_missing(predict, model_file, pictures, capsys):
    good = next(iter(pictures))
    assert predict([str(model_file), "/dev/zero", str(good)]) == 1
    out, err = capsys.readouterr()
    assert err == ("/dev/zero: error: /dev/zero is not a regular file (a device, a pipe or a socket): "
                   "give a picture file, PNG or JPEG.\n")
    assert out.startswith(f"{good}: 1 (")


def small_cnn():
    """28x28x1 -> Conv2D(4, 3, relu) -> MaxPooling2D(2) -> Flatten -> Dense(10, softmax), untrained (seed 0)."""
    import tinynet
    from tinynet.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from tinynet.models import Sequential

    tinynet.utils.set_random_seed(0)
    return Sequential([Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(2), Flatten(),
                       Dense(10, activation="softmax")])


def test_a_cnn_model_reads_the_digits_as_28x28x1_images(predict, pictures, tmp_path, capsys):
    from tinynet.models import load_model
    from tinynet.utils.digits import load_digit

    small_cnn().save(tmp_path / "cnn.npz")
    model = load_model(tmp_path / "cnn.npz", compile=False)
    paths = list(pictures)[:2]
    assert predict([str(tmp_path / "cnn.npz"), *map(str, paths)]) == 0
    x = np.stack([load_digit(path) for path in paths]).reshape(2, 28, 28, 1)  # one grey channel, as Keras
    expected = ""
    for path, p in zip(paths, model.predict(x, verbose=0)):
        expected += f"{path}: " + ", ".join(f"{k} ({p[k]:.1%})" for k in np.argsort(-p, kind="stable")[:3]) + "\n"
    assert capsys.readouterr().out == expected


def test_a_model_of_28x28_inputs_reads_the_digit_unflattened(predict, pictures, mnist_model, tmp_path, capsys):
    """Inputs (None, 28, 28), a Flatten first: the same weights read the same digit as the 784-input model."""
    from tinynet.layers import Dense, Flatten
    from tinynet.models import Sequential

    flat = Sequential([Flatten(input_shape=(28, 28)), Dense(64, activation="relu"), Dense(10, activation="softmax")])
    flat.set_weights(mnist_model[0].get_weights())
    flat.save(tmp_path / "flat.npz")
    mnist_model[0].save(tmp_path / "dense.npz")
    path = str(next(iter(pictures)))
    predict([str(tmp_path / "flat.npz"), path])
    out = capsys.readouterr().out
    predict([str(tmp_path / "dense.npz"), path])
    assert out == capsys.readouterr().out and LINE.fullmatch(out.strip())["digits"] == "1"


@host
def test_a_model_of_other_image_inputs_is_refused_naming_the_shapes_accepted(predict, pictures, tmp_path, capsys):
    from tinynet.layers import Conv2D, Dense, Flatten
    from tinynet.models import Sequential

    Sequential([Conv2D(2, 3, input_shape=(32, 32, 1)), Flatten(), Dense(10)]).save(tmp_path / "big.npz")
    with pytest.raises(SystemExit) as info:
        predict([str(tmp_path / "big.npz"), str(next(iter(pictures)))])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert "inputs of shape (None, 784), (None, 28, 28, 1), (None, 28, 28)" in err
    assert "got inputs (None, 32, 32, 1) and outputs (None, 10)" in err and "examples/mnist_cnn.py --save" in err
