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
# The same four files gunzipped (``gunzip *.gz`` leaves them without .gz), which are read too:
# file name -> sha256 of the unzipped bytes.
SHA256_UNZIPPED = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def load_data(path=None):
    """Return MNIST as `(x_train, y_train), (x_test, y_test)` uint8 arrays.

    The four .gz files are read from the folder `path` if given, else from
    the folder in the environment variable TINYNET_DATA_DIR, else from a cache
    folder (downloaded there on first use). Files already gunzipped (the same
    names without .gz) are read too. Every file is checked by sha256.
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
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a folder path (str or os.PathLike), got {path!r}")
        folder, how = Path(path), "Put the four files there, or call load_data() without a path."
    elif os.environ.get("TINYNET_DATA_DIR"):
        folder = Path(os.environ["TINYNET_DATA_DIR"])
        how = ("Put the four files there, or unset TINYNET_DATA_DIR to let "
               f"tinynet download them into {cache_dir()}.")
    else:
        return _fetch(cache_dir())
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder: MNIST is read from a folder that holds "
                                 f"the four files {', '.join(SHA256)}. {how}")

    files = {name: _local_file(folder, name) for name in SHA256}
    missing = [name for name, file in files.items() if file is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST files missing in {folder}: {', '.join(missing)} (gzipped, or gunzipped without .gz). "
            f"{_contents(folder)} {how}")
    for file in files.values():
        expected = SHA256.get(file.name) or SHA256_UNZIPPED[file.name]
        actual = sha256_of(file)
        if actual != expected:
            raise DataError(
                f"{file} is not the MNIST file it should be: its sha256 is "
                f"{actual}, expected {expected}. It is damaged or a different version; "
                f"delete it and put a fresh copy in {folder}. {how}")
    return folder


def _local_file(folder, name):
    """`folder/name` (a .gz file), else the same file gunzipped, without .gz; None if neither is there."""
    for file in (folder / name, folder / name.removesuffix(".gz")):
        if file.is_file():
            return file
    return None


def _contents(folder, at_most=8):
    """What the folder holds, as a sentence, so a message about missing files shows what is there."""
    if not folder.is_dir():
        return "That folder does not exist."
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        return "That folder is empty."
    more = f", and {len(names) - at_most} more" if len(names) > at_most else ""
    return f"That folder holds: {', '.join(names[:at_most])}{more}."


def _fetch(folder, mirrors=None):
    """Make sure `folder` holds the four verified files; download what is missing or bad."""
    folder = Path(folder)
    mirrors = MIRRORS if mirrors is None else mirrors  # read at call time, so tests can patch it
    for name, expected in SHA256.items():
        file, unzipped = folder / name, folder / name.removesuffix(".gz")
        if file.is_file() and sha256_of(file) == expected:
            continue
        if not file.exists() and unzipped.is_file() and sha256_of(unzipped) == SHA256_UNZIPPED[unzipped.name]:
            continue  # gunzipped by hand: as good
        if file.exists():
            print(f"{file} is damaged (wrong sha256); downloading it again", file=sys.stderr)
            file.unlink()
        download([base + name for base in mirrors], file, expected)
    return folder


def _read_pair(folder, prefix):
    """Read `<prefix>-images` and `<prefix>-labels` and check their shapes agree."""
    images_file = _local_file(folder, f"{prefix}-images-idx3-ubyte.gz")
    labels_file = _local_file(folder, f"{prefix}-labels-idx1-ubyte.gz")
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.dtype != "uint8" or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_file}: expected uint8 images of shape (N, 28, 28), "
                        f"got {images.dtype} {images.shape}")
    if labels.dtype != "uint8" or labels.shape != images.shape[:1]:
        raise DataError(f"{labels_file}: expected {len(images)} uint8 labels, "
                        f"got {labels.dtype} {labels.shape}")
    return images, labels
