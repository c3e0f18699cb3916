"""Checks the example scripts make of their command-line arguments before any work starts.

A file or folder to write, or a model to use, is checked first: a mistake is
reported in a second (``parser.error``: the flag, what is wrong, what to do), not
after minutes of training. Each ``*_problem`` function returns None when all is
well, else the sentence to report.

Not an example itself: examples/mnist.py, line_fit.py, predict.py and draw.py load it
by its path (examples/ is a folder of scripts, not a package).
"""
import errno
import os
import tempfile
from pathlib import Path


def folder_problem(path):
    """Why the folder ``path`` cannot receive files (it is created when missing), or None."""
    if not path:
        return "give the name of a folder"
    folder = Path(path)
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            return "you may not write in that folder: pick another"
        return _write_problem(folder)
    if folder.exists():
        return "that is a file, not a folder: give the name of a folder (it is created if missing)"
    return _cannot_create(folder)


def file_problem(path, suffixes, example, ignore_case=False):
    """Why a file cannot be written at ``path`` (its folder is created when missing), or None.

    ``suffixes``: the extensions it may have (".npz", ...), in any case if ``ignore_case``;
    ``example``: a good name, for the message.
    """
    if not path:
        return f"give a file name, like {example}"
    file = Path(path)
    if file.is_dir():
        return f"that is a folder: give a file name in it, like {file / example}"
    suffix = file.suffix.lower() if ignore_case else file.suffix
    if suffix not in suffixes or file.stem == "":
        ending = next(iter(suffixes)) if len(suffixes) == 1 else f"one of {', '.join(sorted(suffixes))}"
        return f"give a file name ending in {ending}, like {example}"
    if file.parent.is_dir():
        writable = os.access(file.parent, os.W_OK | os.X_OK) and (not file.exists() or os.access(file, os.W_OK))
        return _write_problem(file.parent) if writable else "you may not write there: pick another place"
    if file.parent.exists():
        return f"{file.parent} is a file, not a folder: pick another place"
    return _cannot_create(file.parent)


def _cannot_create(folder):
    """Why ``folder`` (which does not exist) cannot be created, or None: its nearest existing ancestor decides."""
    above = folder.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        return f"{above} is a file, not a folder: pick another place"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"{folder} cannot be created (you may not write in {above}): pick another place"
    return _write_problem(above)


def _write_problem(folder):
    """Why nothing can be written in the existing ``folder`` (a full or read-only disk), or None: found by
    writing a few kilobytes there, to disk, in a temporary file that is then gone."""
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(bytes(4096))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        fix = "free some space, or pick another place" if e.errno in (errno.ENOSPC, errno.EDQUOT) else \
            "pick a folder you can write in"
        return f"cannot write in {folder} ({e.strerror or e}): {fix}"
    return None


# The input shapes an MNIST classifier may take: the 28x28 digit flattened (examples/mnist.py), as one
# grey channel (examples/mnist_cnn.py, channels last as Keras), or as it is (a model that starts with Flatten).
MNIST_INPUT_SHAPES = ((None, 784), (None, 28, 28, 1), (None, 28, 28))


def mnist_classifier_problem(model):
    """Why ``model`` is not an MNIST classifier as examples/mnist.py or examples/mnist_cnn.py builds it, or None.

    Wanted: a 28x28 digit in (inputs of one of MNIST_INPUT_SHAPES) -> 10 probabilities out.
    """
    if model.input_shape not in MNIST_INPUT_SHAPES or model.output_shape != (None, 10):
        accepted = ", ".join(str(shape) for shape in MNIST_INPUT_SHAPES)
        return (f"expected an MNIST classifier, 784 inputs -> 10 probabilities: inputs of shape {accepted} "
                f"(a 28x28 digit, flat, as one channel or as it is) and outputs (None, 10); got inputs "
                f"{model.input_shape} and outputs {model.output_shape}. Train one with: "
                "python examples/mnist.py --save model.npz, or python examples/mnist_cnn.py --save cnn.npz")
    return None


def as_model_input(model, digits):
    """Digits (N, 28, 28) reshaped to what ``model`` takes: (N, 784), (N, 28, 28, 1) or (N, 28, 28)."""
    return digits.reshape(len(digits), *model.input_shape[1:])
