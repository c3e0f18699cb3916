"""Shared test helpers: where the real MNIST files are."""
import os
from pathlib import Path

import pytest


def mnist_dir():
    """The folder with the four MNIST files: $TINYNET_DATA_DIR, or ../shared/data/mnist.

    In CI (CI=true) a missing folder is a failure, never a silent skip.
    """
    folder = Path(os.environ.get("TINYNET_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared/data/mnist")
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        message = f"MNIST files not found in {folder}: set TINYNET_DATA_DIR to the folder holding them."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder
