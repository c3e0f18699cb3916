"""The Keras MNIST "hello world", step by step, on tinynet.

    python examples/mnist.py                 # 5 epochs, as in the notebook
    python examples/mnist.py --epochs 1 --data-dir ../shared/data/mnist
    python examples/mnist.py --device gpu    # on an NVIDIA GPU (pip install ".[gpu]" in the checkout)
    python examples/mnist.py --plots out/ --save out/model.npz   # pictures, and the trained model

Each step prints what the notebook shows: the data's shapes and range, the
model summary, the training progress and the final validation accuracy.
"""
import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
from pathlib import Path

import tinynet
from tinynet.datasets import mnist
from tinynet.layers import Dense
from tinynet.models import Sequential


def _load_checks():
    """examples/cli_checks.py, the checks of arguments the examples share (examples/ is no package)."""
    spec = importlib.util.spec_from_file_location("cli_checks", Path(__file__).resolve().parent / "cli_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _load_checks()


def choose_device(device):
    """Select the backend for --device and say which was chosen (and why not the GPU, for auto)."""
    try:
        tinynet.backend.set_backend({"gpu": "cupy", "cpu": "numpy"}.get(device, "auto"))
    except RuntimeError as error:  # --device gpu without a usable GPU: the reason and what to install
        sys.exit(f"--device gpu: {error}")
    if tinynet.backend.get_backend() == "cupy":
        print("0. Device: GPU (CuPy)")
    else:
        reason = f"; no GPU: {tinynet.backend.gpu_problem()}" if device == "auto" else ""
        print(f"0. Device: CPU (NumPy){reason}")


def add_training_options(parser, epochs, batch_size):
    """The options every MNIST example takes: --epochs, --batch-size, --seed, --data-dir, --device."""
    parser.add_argument("--epochs", type=int, default=epochs, help="passes over the training data, 1 or more")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="images per update, 1 or more")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run exactly (CPU); 0 to 2**32 - 1")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four MNIST .gz files (default: $TINYNET_DATA_DIR, else download)")
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                        help="auto (default): the GPU when one is usable, else the CPU")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_options(parser, epochs=5, batch_size=32)
    parser.add_argument("--plots", metavar="DIR", default=None,
                        help="write digits.png, training_curves.png, confusion_matrix.png and mistakes.png there")
    parser.add_argument("--save", metavar="PATH", default=None, help="save the trained model (a .npz file)")
    args = parser.parse_args(argv)
    check_arguments(parser, args)  # now, not after loading MNIST and training
    choose_device(args.device)
    if args.seed is not None:
        tinynet.utils.set_random_seed(args.seed)

    print("1. Load the data")
    (x_train, y_train), (x_valid, y_valid) = load_mnist(parser, args.data_dir)
    print(f"   x_train {x_train.shape} {x_train.dtype}, y_train {y_train.shape}; "
          f"x_valid {x_valid.shape}, y_valid {y_valid.shape}")
    print(f"   pixel values from {x_train.min()} to {x_train.max()}; the first label is {y_train[0]}")

    print("2. Flatten each 28x28 image into 784 numbers, and scale them to 0..1")
    x_train = x_train.reshape(60000, 784)
    x_valid = x_valid.reshape(10000, 784)
    x_train = x_train / 255
    x_valid = x_valid / 255
    print(f"   x_train {x_train.shape} {x_train.dtype}, from {x_train.min()} to {x_train.max()}")

    print("3. One-hot encode the labels")
    y_train = tinynet.utils.to_categorical(y_train, 10)
    y_valid = tinynet.utils.to_categorical(y_valid, 10)
    print(f"   the first label is now {y_train[0]}")

    print("4. Build the model")
    model = build_model()
    model.summary()

    print("5. Compile and train")
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=1,
                        validation_data=(x_valid, y_valid))

    print("6. Results")
    seconds = history.epoch_seconds
    print("   epoch seconds: " + ", ".join(f"{s:.2f}" for s in seconds)
          + f" (mean {statistics.mean(seconds):.2f} s, backend {tinynet.backend.get_backend()}, {os.cpu_count()} cores)")
    print(f"   final accuracy {history.history['accuracy'][-1]:.4f}, "
          f"validation accuracy {history.history['val_accuracy'][-1]:.4f}")

    if args.plots:
        print("7. Pictures")
        write_plots(args.plots, x_train, y_train, x_valid, y_valid, model, history)
    if args.save:
        problem = save(model, args.save)
        if problem:
            parser.exit(1, f"{parser.prog}: error: --save {args.save}: {problem}\n")
    return history


def load_mnist(parser, data_dir):
    """``mnist.load_data(data_dir)``, or the script's exit with an error naming ``--data-dir`` (no traceback)."""
    try:
        return mnist.load_data(data_dir)
    except (OSError, ValueError) as e:  # missing, damaged or wrong files: the message names them
        message = str(e)
        if data_dir is not None:  # the fix is this script's flag, not load_data's argument
            message = f"--data-dir {data_dir}: " + message.replace("call load_data() without a path",
                                                                  "leave out --data-dir")
        parser.exit(1, f"{parser.prog}: error: {message}\n")


def save(model, path):
    """Save the trained model at ``path``, or return why not. When the disk fills up during training, the
    model is saved to a temporary file instead, and the message names it: minutes of training are not lost."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        model.save(path)
    except ValueError as e:  # its weights hold NaN: training diverged, and such a file would predict nothing
        return str(e)
    except OSError as e:
        fd, fallback = tempfile.mkstemp(prefix="mnist-", suffix=".npz")
        os.close(fd)
        try:
            model.save(fallback)
        except OSError as again:
            os.remove(fallback)
            return f"the model could not be saved ({e}), nor at {fallback} ({again}): it is lost."
        return f"the model could not be saved ({e}). It was saved to {fallback} instead: move it where you want it."
    print(f"8. Saved the model to {path}: tinynet.models.load_model reads it back, and\n"
          f"   python examples/predict.py {path} digit.png   reads your own digits with it")
    return None


def check_training_options(parser, args):
    """parser.error (exit 2) for a bad --epochs, --batch-size, --seed or --data-dir, before any work."""
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            parser.error(f"{flag} must be 1 or more, got {value}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        parser.error(f"--seed must be from 0 to 2**32 - 1, got {args.seed}")
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        what = "is a file, not a folder" if os.path.exists(args.data_dir) else "does not exist"
        parser.error(f"--data-dir {args.data_dir!r} {what}: give the folder that holds the four MNIST .gz files")


def check_arguments(parser, args):
    """parser.error (exit 2) for an argument that would fail later: after loading MNIST, or after training."""
    check_training_options(parser, args)
    if args.plots is not None:
        problem = checks.folder_problem(args.plots)
        if problem:
            parser.error(f"--plots {args.plots!r}: {problem}")
    if args.save is not None:
        problem = checks.file_problem(args.save, {".npz"}, "model.npz")
        if problem:
            parser.error(f"--save {args.save!r}: {problem}")


def build_model():
    """The notebook's model: 784 inputs -> 512 (relu) -> 512 (relu) -> 10 (softmax), not yet compiled."""
    model = Sequential()
    model.add(Dense(units=512, activation="relu", input_shape=(784,)))
    model.add(Dense(units=512, activation="relu"))
    model.add(Dense(units=10, activation="softmax"))
    return model


def write_plots(folder, x_train, y_train, x_valid, y_valid, model, history):
    """The four pictures: training digits, training curves, confusion matrix, confident mistakes."""
    os.makedirs(folder, exist_ok=True)
    digits, curves, confusion, mistakes = (os.path.join(folder, name) for name in (
        "digits.png", "training_curves.png", "confusion_matrix.png", "mistakes.png"))
    p_valid = model.predict(x_valid, verbose=0)  # probabilities, (10000, 10)
    tinynet.plot.image_grid(x_train[:40], y_train[:40], path=digits)
    tinynet.plot.training_curves(history, path=curves)
    tinynet.plot.confusion_matrix(y_valid, p_valid, path=confusion)
    tinynet.plot.mistakes(x_valid, y_valid, p_valid, path=mistakes)
    for path in (digits, curves, confusion, mistakes):
        print(f"   {path}")


if __name__ == "__main__":
    main()
