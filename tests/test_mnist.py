"""Tests for tinynet.datasets.mnist, on the real files and a local mirror (no internet)."""

import gzip
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from tinynet.datasets import mnist
from tinynet.datasets.download import sha256_of
from tinynet.datasets.idx import DataError, read_idx

pytestmark = pytest.mark.host_only("the MNIST loader returns NumPy arrays on the host")

# CI sets TINYNET_DATA_DIR; locally the files live in shared/ next to the repo.
REAL_DIR = Path(os.environ.get("TINYNET_DATA_DIR")
                or Path(__file__).parents[2] / "shared" / "data" / "mnist").resolve()
NAMES = list(mnist.SHA256)
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def need_real_files():
    missing = [name for name in NAMES if not (REAL_DIR / name).is_file()]
    if missing:
        msg = f"MNIST files {missing} not found in {REAL_DIR}; set TINYNET_DATA_DIR"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Every test: no mirrors (so nothing can reach the internet), cache in tmp_path."""
    monkeypatch.setattr(mnist, "MIRRORS", ())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYNET_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def real():
    """The real dataset, loaded once for the whole module."""
    need_real_files()
    return mnist.load_data(path=REAL_DIR)


def copy_folder(dest, names=NAMES):
    """Copy some of the real files into `dest` and return it."""
    need_real_files()
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(REAL_DIR / name, dest / name)
    return dest


# --- the real data ---------------------------------------------------------

def test_shapes_and_dtypes(real):
    (x_train, y_train), (x_test, y_test) = real
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}


def test_first_labels(real):
    (_, y_train), (_, y_test) = real
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_label_counts(real):
    (_, y_train), (_, y_test) = real
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS


def test_pixels(real):
    (x_train, _), (x_test, _) = real
    for x in (x_train, x_test):
        assert x.min() == 0 and x.max() == 255
    assert int(x_train[0].sum()) == 27525 and int(x_test[0].sum()) == 18454
    assert x_train[0, 0].tolist() == [0] * 28  # the border is blank


# --- where the files are looked for ---------------------------------------

def test_env_var_is_used(monkeypatch, tmp_path):
    need_real_files()
    monkeypatch.setenv("TINYNET_DATA_DIR", str(REAL_DIR))
    assert mnist._find_files() == REAL_DIR
    monkeypatch.setenv("TINYNET_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        mnist.load_data()
    assert mnist._find_files(REAL_DIR) == REAL_DIR  # an explicit path wins


def test_missing_files_in_explicit_folder(tmp_path):
    folder = copy_folder(tmp_path / "mine", NAMES[1:3])
    with pytest.raises(FileNotFoundError) as e:
        mnist.load_data(path=folder)
    msg = str(e.value)
    missing, there = msg.split(" That folder holds: ")
    assert str(folder) in missing and NAMES[0] in missing and NAMES[3] in missing and NAMES[1] not in missing
    assert there == f"{NAMES[2]}, {NAMES[1]}. Put the four files there, or call load_data() without a path."


def test_missing_files_in_env_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        mnist.load_data()  # would be a DownloadError if it tried to download
    msg = str(e.value)
    assert str(tmp_path) in msg and all(name in msg for name in NAMES)
    assert "unset TINYNET_DATA_DIR" in msg and str(mnist.cache_dir()) in msg


@pytest.mark.parametrize("via_env", [False, True])
def test_a_file_given_as_the_folder_is_named(tmp_path, monkeypatch, via_env):
    file = tmp_path / "notes.txt"
    file.write_text("not MNIST")
    if via_env:
        monkeypatch.setenv("TINYNET_DATA_DIR", str(file))
    with pytest.raises(NotADirectoryError) as e:
        mnist.load_data(None if via_env else file)
    msg = str(e.value)
    assert msg.startswith(f"{file} is a file, not a folder") and "does not exist" not in msg
    assert ("unset TINYNET_DATA_DIR" if via_env else "without a path") in msg


@pytest.mark.parametrize("path", [5, 2.5, b"/tmp", ["/tmp"]])
def test_a_path_that_is_no_path_is_a_type_error(path):
    with pytest.raises(TypeError) as e:
        mnist.load_data(path=path)
    assert str(e.value) == f"path must be a folder path (str or os.PathLike), got {path!r}"


@pytest.mark.parametrize("via_env", [False, True])
def test_corrupted_local_file(tmp_path, monkeypatch, via_env):
    folder = copy_folder(tmp_path / "mine")
    bad = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(data)
    if via_env:
        monkeypatch.setenv("TINYNET_DATA_DIR", str(folder))
    with pytest.raises(DataError) as e:
        mnist.load_data(path=None if via_env else folder)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert str(bad) in msg and mnist.SHA256[bad.name] in msg and sha256_of(bad) in msg
    assert "delete it" in msg
    assert bad.read_bytes() == data  # a user's own file is never deleted


def test_shape_checks(tmp_path):
    def write_idx(name, array):
        header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
        (tmp_path / name).write_bytes(gzip.compress(header + array.tobytes()))

    write_idx("t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    write_idx("t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(DataError, match="expected 3 uint8 labels"):
        mnist._read_pair(tmp_path, "t10k")
    write_idx("t10k-images-idx3-ubyte.gz", np.zeros((3, 28), np.uint8))
    with pytest.raises(DataError, match=r"shape \(N, 28, 28\)"):
        mnist._read_pair(tmp_path, "t10k")


# --- downloading into the cache from a local mirror ------------------------

class MirrorHandler(BaseHTTPRequestHandler):
    """Serves the real MNIST files under /mnist/; anything else is a 404."""

    def do_GET(self):
        self.server.requests.append(self.path)
        name = self.path.removeprefix("/mnist/")
        if not self.path.startswith("/mnist/") or name not in NAMES:
            self.send_error(404)
            return
        body = (REAL_DIR / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(monkeypatch):
    """A local mirror of the real files; mnist.MIRRORS = [a dead one, this one]."""
    need_real_files()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    srv.requests = []
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    monkeypatch.setattr(mnist, "MIRRORS", (base + "/dead/", base + "/mnist/"))
    threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_default_cache_dir(monkeypatch, tmp_path):
    assert mnist.cache_dir() == tmp_path / "cache" / "tinynet" / "datasets" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist.cache_dir() == tmp_path / "home" / ".cache" / "tinynet" / "datasets" / "mnist"


def test_download_into_cache(mirror):
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    cache = mnist.cache_dir()
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES)  # no temp files
    assert all(sha256_of(cache / name) == sha for name, sha in mnist.SHA256.items())
    # each file: the dead mirror (404), then the good one
    assert mirror.requests == [p for n in NAMES for p in ("/dead/" + n, "/mnist/" + n)]

    mirror.requests.clear()
    assert mnist._find_files() == cache
    assert mirror.requests == []  # second time: straight from the cache


def test_corrupt_cache_file_is_replaced(mirror, capsys):
    cache = copy_folder(mnist.cache_dir())
    bad = cache / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:1000])  # a truncated earlier download
    assert mnist._find_files() == cache
    assert mirror.requests == ["/dead/" + bad.name, "/mnist/" + bad.name]
    assert sha256_of(bad) == mnist.SHA256[bad.name]
    assert read_idx(bad)[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert "damaged" in capsys.readouterr().err


def test_cache_download_fails_cleanly():
    with pytest.raises(OSError, match="TINYNET_DATA_DIR"):
        mnist.load_data()  # MIRRORS is empty here: nothing can be fetched
    assert list(mnist.cache_dir().iterdir()) == []


# --- files gunzipped by hand ----------------------------------------------------

def gunzip_folder(dest, names=NAMES):
    """Gunzipped copies of some of the real files in `dest` (the names without .gz), as `gunzip *.gz` leaves them."""
    need_real_files()
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name.removesuffix(".gz")).write_bytes(gzip.decompress((REAL_DIR / name).read_bytes()))
    return dest


def test_the_unzipped_hashes_are_those_of_the_real_files(tmp_path):
    folder = gunzip_folder(tmp_path / "raw")
    assert {name: sha256_of(folder / name) for name in mnist.SHA256_UNZIPPED} == mnist.SHA256_UNZIPPED
    assert list(mnist.SHA256_UNZIPPED) == [name.removesuffix(".gz") for name in NAMES]


@pytest.mark.parametrize("via_env", [False, True])
def test_gunzipped_files_are_read(tmp_path, monkeypatch, real, via_env):
    folder = gunzip_folder(tmp_path / "raw")
    if via_env:
        monkeypatch.setenv("TINYNET_DATA_DIR", str(folder))
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=None if via_env else folder)
    for got, expected in zip((x_train, y_train, x_test, y_test), (*real[0], *real[1])):
        np.testing.assert_array_equal(got, expected)


def test_a_mix_of_gzipped_and_gunzipped_files(tmp_path, real):
    folder = copy_folder(tmp_path / "mixed", NAMES[:2])
    gunzip_folder(folder, NAMES[2:])
    (_, y_train), (x_test, _) = mnist.load_data(path=folder)
    np.testing.assert_array_equal(y_train, real[0][1])
    np.testing.assert_array_equal(x_test, real[1][0])


def test_a_damaged_gunzipped_file_is_named(tmp_path):
    folder = gunzip_folder(tmp_path / "raw")
    bad = folder / "t10k-labels-idx1-ubyte"
    data = bytearray(bad.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(data)
    with pytest.raises(DataError) as e:
        mnist.load_data(path=folder)
    msg = str(e.value)
    assert msg.startswith(f"{bad} is not the MNIST file it should be: its sha256 is {sha256_of(bad)}, "
                          f"expected {mnist.SHA256_UNZIPPED[bad.name]}.")
    assert "delete it" in msg and bad.read_bytes() == data


def test_missing_files_name_what_the_folder_holds(tmp_path):
    folder = gunzip_folder(tmp_path / "raw", NAMES[:1])
    (folder / "train-labels.idx1-ubyte").write_bytes(b"")  # another naming, as some copies have
    with pytest.raises(FileNotFoundError) as e:
        mnist.load_data(path=folder)
    assert str(e.value) == (
        f"MNIST files missing in {folder}: {', '.join(NAMES[1:])} (gzipped, or gunzipped without .gz). "
        "That folder holds: train-images-idx3-ubyte, train-labels.idx1-ubyte. "
        "Put the four files there, or call load_data() without a path.")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"That folder is empty\. "):
        mnist.load_data(path=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"That folder does not exist\. "):
        mnist.load_data(path=tmp_path / "nowhere")


def test_gunzipped_files_in_the_cache_are_not_downloaded_again(mirror):
    cache = gunzip_folder(mnist.cache_dir())
    assert mnist._find_files() == cache
    assert mirror.requests == []  # nothing fetched: the unzipped files check out
    assert sorted(p.name for p in cache.iterdir()) == sorted(mnist.SHA256_UNZIPPED)
    (_, y_train), _ = mnist.load_data()
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
