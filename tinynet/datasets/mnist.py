"""The MNIST handwritten digits: 60,000 training and 10,000 test images.

    (x_train, y_train), (x_test, y_test) = mnist.load_data()

Same arrays as `keras.datasets.mnist.load_data()`: uint8 images of shape
(N, 28, 28) with values 0..255, and uint8 labels 0..9 of shape (N,).
"""

import os
import sys
from pathlib import Path

from tinynet.datasets.download import download, sha256_of
from tinynet.datasets.idx import DataError, read_idx

# Tried in this order; each must serve the four files below.
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

# file name -> sha256 of the canonical file
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def load_data(path=None):
    """Return MNIST as `(x_train, y_train), (x_test, y_test)` uint8 arrays.

    The four .gz files are read from the folder `path` if given, else from
    the folder in the environment variable TINYNET_DATA_DIR, else from a cache
    folder (downloaded there on first use). Every file is checked by sha256.
    """
    folder = _find_files(path)
    train = _read_pair(folder, "train")
    test = _read_pair(folder, "t10k")
    return train, test


def cache_dir():
    """Return the folder MNIST is downloaded into: $XDG_CACHE_HOME/tinynet/datasets/mnist."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tinynet" / "datasets" / "mnist"


def _find_files(path=None):
    """Return the folder holding the four verified files, downloading if needed."""
    if path is not None:
        folder, how = Path(path), "Put the four files there, or call load_data() without a path."
    elif os.environ.get("TINYNET_DATA_DIR"):
        folder = Path(os.environ["TINYNET_DATA_DIR"])
        how = ("Put the four files there, or unset TINYNET_DATA_DIR to let "
               f"tinynet download them into {cache_dir()}.")
    else:
        return _fetch(cache_dir())

    missing = [name for name in SHA256 if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"MNIST files missing in {folder}: {', '.join(missing)}. {how}")
    for name, expected in SHA256.items():
        actual = sha256_of(folder / name)
        if actual != expected:
            raise DataError(
                f"{folder / name} is not the MNIST file it should be: its sha256 is "
                f"{actual}, expected {expected}. It is damaged or a different version; "
                f"delete it and put a fresh copy in {folder}. {how}")
    return folder


def _fetch(folder, mirrors=None):
    """Make sure `folder` holds the four verified files; download what is missing or bad."""
    folder = Path(folder)
    mirrors = MIRRORS if mirrors is None else mirrors  # read at call time, so tests can patch it
    for name, expected in SHA256.items():
        file = folder / name
        if file.is_file() and sha256_of(file) == expected:
            continue
        if file.exists():
            print(f"{file} is damaged (wrong sha256); downloading it again", file=sys.stderr)
            file.unlink()
        download([base + name for base in mirrors], file, expected)
    return folder


def _read_pair(folder, prefix):
    """Read `<prefix>-images` and `<prefix>-labels` and check their shapes agree."""
    images_file = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels_file = folder / f"{prefix}-labels-idx1-ubyte.gz"
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.dtype != "uint8" or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_file}: expected uint8 images of shape (N, 28, 28), "
                        f"got {images.dtype} {images.shape}")
    if labels.dtype != "uint8" or labels.shape != images.shape[:1]:
        raise DataError(f"{labels_file}: expected {len(images)} uint8 labels, "
                        f"got {labels.dtype} {labels.shape}")
    return images, labels
