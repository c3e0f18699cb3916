"""Read your own handwritten digits with a model saved by examples/mnist.py or examples/mnist_cnn.py.

    python examples/mnist.py --save out/model.npz
    python examples/predict.py out/model.npz my_seven.png photo_of_a_two.jpg
    python examples/mnist_cnn.py --save out/cnn.npz        # or a convolutional network
    python examples/predict.py out/cnn.npz my_seven.png

Each picture (PNG or JPEG, any size; dark ink on light paper, light on dark, any
ink on a transparent sheet, 16-bit scans too) is made to look like an MNIST
digit, as the model saw them in training: grey,
white ink on black, the digit scaled to fit 20x20 pixels and centred by its
centre of mass in 28x28 (tinynet.utils.digits.load_digit). Then the model
prints its three most likely digits:

    my_seven.png: 7 (98.1%), 1 (1.2%), 9 (0.3%)

A picture that cannot be read (missing, not a file, damaged, or too large to decode
safely) is reported on stderr and the others are still read; the exit status is then 1.
--show PATH writes a picture of the 28x28 inputs the model was given (PNG, PDF,
SVG, JPEG, ... by its extension). The model may take the digit flattened, inputs
(None, 784) as examples/mnist.py's, or as an image, (None, 28, 28, 1) as
examples/mnist_cnn.py's (or (None, 28, 28)): the 28x28 digit is reshaped to what it
takes. A model that is no MNIST classifier (another input shape, or other than 10
outputs), or a --show path that cannot be written, is refused before any picture is read.
"""
import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy

import tinynet
from tinynet.models import load_model
from tinynet.utils.digits import load_digit

TOP = 3
SHOW_FORMATS = {".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".eps", ".ps"}  # matplotlib's


def _example(name):
    """examples/<name>.py as a module (examples/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_example", Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _example("cli_checks")  # the checks examples/draw.py and examples/mnist.py make too


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model saved with model.save, e.g. out/model.npz")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG pictures of single digits")
    parser.add_argument("--show", metavar="PATH", default=None,
                        help="write a picture (.png, .pdf, .svg, .jpg, ...) of the prepared 28x28 inputs, "
                             "titled with the predictions")
    args = parser.parse_args(argv)
    if args.show is not None:  # now, not after reading every picture
        problem = checks.file_problem(args.show, SHOW_FORMATS, "inputs.png", ignore_case=True)
        if problem:
            parser.error(f"--show {args.show!r}: {problem}")
    try:
        model = load_model(args.model, compile=False)  # predicting needs no loss or optimizer
    except (OSError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    problem = checks.mnist_classifier_problem(model)  # as examples/draw.py checks it
    if problem:
        parser.exit(2, f"error: {args.model}: {problem}\n")

    names, inputs, failed = [], [], 0
    for path in args.images:
        try:
            inputs.append(load_digit(path))  # (28, 28), in [0, 1]
            names.append(path)
        except (OSError, ValueError) as e:
            print(f"{path}: error: {e}", file=sys.stderr)
            failed += 1
    if inputs:
        images = numpy.stack(inputs)  # (N, 28, 28)
        x = checks.as_model_input(model, images)  # (N, 784) flattened, or (N, 28, 28, 1): as in training
        probabilities = model.predict(x, verbose=0)
        for name, p in zip(names, probabilities):
            best = numpy.argsort(-p, kind="stable")[:TOP]
            print(f"{name}: " + ", ".join(f"{k} ({p[k]:.1%})" for k in best))
        if args.show:
            os.makedirs(os.path.dirname(args.show) or ".", exist_ok=True)
            tinynet.plot.image_grid(images, predictions=probabilities,
                                    title="What the model saw, and what it read", path=args.show)
            print(f"(the inputs, as the model saw them: {args.show})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
