"""Tests for tinynet.datasets.idx: tiny IDX files written by hand, read back."""

import gzip
import struct

import numpy as np
import pytest

from tinynet.datasets.idx import DataError, read_idx

pytestmark = pytest.mark.host_only("the IDX reader works on bytes and NumPy arrays only")

CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}


def idx_bytes(array):
    """Encode `array` as an IDX file: header, then big-endian data."""
    header = bytes([0, 0, CODES[array.dtype.name], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_uint8_images(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = write(tmp_path / ("images.gz" if gz else "images"), idx_bytes(images), gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, images)
    assert out[1, 2, 3] == 230


def test_known_bytes(tmp_path):
    # An MNIST-style label file written byte by byte: magic 2049, 3 labels.
    path = write(tmp_path / "labels", b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + b"\x05\x00\x04")
    assert read_idx(path).tolist() == [5, 0, 4]


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32", "float64"])
def test_other_dtypes_native_order(tmp_path, dtype):
    values = np.array([[-3, 0, 7], [100, -100, 1]], dtype=dtype)
    out = read_idx(write(tmp_path / "x.idx", idx_bytes(values)))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_big_endian_on_disk(tmp_path):
    # 258 = 0x00000102 must be stored as 00 00 01 02.
    data = idx_bytes(np.array([258, -1], dtype=np.int32))
    assert data[-8:] == b"\x00\x00\x01\x02\xff\xff\xff\xff"
    assert read_idx(write(tmp_path / "x", data, gz=True)).tolist() == [258, -1]


def test_gzip_detected_by_magic_without_suffix(tmp_path):
    values = np.array([1.5, -2.25], dtype=np.float32)
    out = read_idx(write(tmp_path / "noext", idx_bytes(values), gz=True))
    np.testing.assert_array_equal(out, values)


def test_result_is_writable(tmp_path):
    out = read_idx(write(tmp_path / "x", idx_bytes(np.zeros(3, np.uint8))))
    out[0] = 1
    assert out.tolist() == [1, 0, 0]


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path, gz):
    data = idx_bytes(np.zeros((10, 28, 28), np.uint8))[:-100]
    path = write(tmp_path / ("train-images-idx3-ubyte.gz" if gz else "train-images"), data, gz)
    with pytest.raises(DataError, match="truncated: expected 7840 bytes of data, found 7740") as e:
        read_idx(path)
    assert path.name in str(e.value) and "download again" in str(e.value)


def test_truncated_header(tmp_path):
    path = write(tmp_path / "short", b"\x00\x00\x08\x03\x00\x00\x00\x0a")
    with pytest.raises(DataError, match="short is truncated"):
        read_idx(path)


def test_extra_bytes(tmp_path):
    path = write(tmp_path / "long", idx_bytes(np.zeros(4, np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="long is damaged: expected 4 bytes of data, found 5"):
        read_idx(path)


@pytest.mark.parametrize("head", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04", b""])
def test_bad_magic(tmp_path, head):
    path = write(tmp_path / "weird.bin", head + b"\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="weird.bin is not an IDX file"):
        read_idx(path)


def test_garbage_gzip(tmp_path):
    path = write(tmp_path / "labels.gz", b"this is not gzip at all")
    with pytest.raises(DataError, match="labels.gz is not a valid gzip file"):
        read_idx(path)


def test_cut_gzip_stream(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    path = write(tmp_path / "cut.gz", compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match="cut.gz is not a valid gzip file"):
        read_idx(path)


def test_corrupt_gzip_body(tmp_path):
    compressed = bytearray(gzip.compress(bytes(range(256)) * 50))
    compressed[20:40] = b"\xff" * 20
    path = write(tmp_path / "bad.gz", bytes(compressed))
    with pytest.raises(DataError, match="bad.gz"):
        read_idx(path)
