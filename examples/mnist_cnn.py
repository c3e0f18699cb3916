"""Keras's "Simple MNIST convnet", on tinynet: two convolutions and two max-pools, about 99% in 15 epochs.

    python examples/mnist_cnn.py                    # Keras's example: 15 epochs, batch 128, Adam
    python examples/mnist_cnn.py --epochs 1 --data-dir ../shared/data/mnist
    python examples/mnist_cnn.py --model deep       # the course's next model: three blocks with BatchNormalization
    python examples/mnist_cnn.py --device gpu --save out/cnn.npz

Each step prints what Keras's example prints: the data's shapes, the model
summary (34,826 parameters for the simple model), the training progress with
the validation split, and the test loss and accuracy.
"""
import argparse
import importlib.util
import os
import statistics
from pathlib import Path

import tinynet
from tinynet.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D, MaxPooling2D
from tinynet.models import Sequential


def _load_sibling(name):
    """examples/<name>.py, loaded by its path (examples/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mnist_example = _load_sibling("mnist")  # its --device choice, argument checks, MNIST loading and save, shared
checks = mnist_example.checks


def build_model(kind="simple"):
    """The convnet, not yet compiled. ``simple``: Keras's example (34,826 parameters);
    ``deep``: three Conv2D-BatchNormalization-MaxPool2D blocks (32, 64, 128 filters), then Dense(512)."""
    if kind == "simple":
        return Sequential([
            Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)),  # (26, 26, 32)
            MaxPooling2D(pool_size=(2, 2)),                                               # (13, 13, 32)
            Conv2D(64, kernel_size=(3, 3), activation="relu"),                            # (11, 11, 64)
            MaxPooling2D(pool_size=(2, 2)),                                               # (5, 5, 64)
            Flatten(),                                                                    # (1600,)
            Dropout(0.5),
            Dense(10, activation="softmax"),
        ])
    if kind == "deep":
        model = Sequential()
        for i, filters in enumerate((32, 64, 128)):  # (28, 28) -> (14, 14) -> (7, 7) -> (4, 4)
            extra = {"input_shape": (28, 28, 1)} if i == 0 else {}
            model.add(Conv2D(filters, 3, padding="same", activation="relu", **extra))
            model.add(BatchNormalization())
            model.add(MaxPool2D(2, strides=2, padding="same"))
        model.add(Dropout(0.25))
        model.add(Flatten())
        model.add(Dense(512, activation="relu"))
        model.add(Dropout(0.5))
        model.add(Dense(10, activation="softmax"))
        return model
    raise ValueError(f"model must be 'simple' or 'deep', got {kind!r}")


def prepare(x, y):
    """Images (N, 28, 28) of 0..255 to (N, 28, 28, 1) of 0..1 (channels last, as Keras); labels one-hot."""
    x = (x / 255).astype("float32").reshape(len(x), 28, 28, 1)
    return x, tinynet.utils.to_categorical(y, 10)


def check_arguments(parser, args):
    """parser.error (exit 2) for an argument that would fail later: after loading MNIST, or after training."""
    mnist_example.check_training_options(parser, args)
    if args.limit is not None and args.limit < 10:
        parser.error(f"--limit must be 10 or more (the validation split takes a tenth), got {args.limit}")
    if args.save is not None:
        problem = checks.file_problem(args.save, {".npz"}, "cnn.npz")
        if problem:
            parser.error(f"--save {args.save!r}: {problem}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mnist_example.add_training_options(parser, epochs=15, batch_size=128)
    parser.add_argument("--model", choices=["simple", "deep"], default="simple",
                        help="simple (default): Keras's example; deep: three blocks with BatchNormalization")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="train on the first N training images only, and test on the first N (a quick check)")
    parser.add_argument("--save", metavar="PATH", default=None, help="save the trained model (a .npz file)")
    args = parser.parse_args(argv)
    check_arguments(parser, args)  # now, not after loading MNIST and training
    mnist_example.choose_device(args.device)
    if args.seed is not None:
        tinynet.utils.set_random_seed(args.seed)

    print("1. Load the data")
    (x_train, y_train), (x_test, y_test) = mnist_example.load_mnist(parser, args.data_dir)
    if args.limit is not None:
        x_train, y_train, x_test, y_test = x_train[:args.limit], y_train[:args.limit], x_test[:args.limit], \
            y_test[:args.limit]

    print("2. Scale to 0..1, add the channel axis, one-hot encode the labels")
    x_train, y_train = prepare(x_train, y_train)
    x_test, y_test = prepare(x_test, y_test)
    print(f"   x_train shape: {x_train.shape}")
    print(f"   {x_train.shape[0]} train samples")
    print(f"   {x_test.shape[0]} test samples")

    print("3. Build the model")
    model = build_model(args.model)
    model.summary()

    print("4. Train")
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1)
    seconds = history.epoch_seconds
    print("   epoch seconds: " + ", ".join(f"{s:.2f}" for s in seconds)
          + f" (median {statistics.median(seconds):.2f} s, backend {tinynet.backend.get_backend()}, "
          f"{os.cpu_count()} cores)")

    print("5. Evaluate on the test set")
    score = model.evaluate(x_test, y_test, verbose=0)
    print("Test loss:", float(score[0]))
    print("Test accuracy:", float(score[1]))

    if args.save:
        problem = mnist_example.save(model, args.save)
        if problem:
            parser.exit(1, f"{parser.prog}: error: --save {args.save}: {problem}\n")
    return history, score


if __name__ == "__main__":
    main()
