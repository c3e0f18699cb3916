"""Read IDX files, the simple binary format MNIST is published in.

An IDX file is a tiny header followed by the raw numbers, all big-endian:

    2 zero bytes | dtype code (1 byte) | ndim (1 byte) | ndim dims (uint32 each) | data

MNIST image files start with the 4 bytes 00 00 08 03 (the "magic number" 2051:
uint8, 3 dims) and label files with 00 00 08 01 (2049: uint8, 1 dim).
Files are often gzipped; `read_idx` handles both.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

# dtype code -> big-endian numpy dtype
DTYPES = {
    0x08: np.dtype(">u1"),  # unsigned byte (MNIST uses this one)
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short
    0x0C: np.dtype(">i4"),  # int
    0x0D: np.dtype(">f4"),  # float
    0x0E: np.dtype(">f8"),  # double
}

GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A data file is damaged, truncated, or not the file we expected."""


def read_idx(path):
    """Read the IDX file at `path` (gzipped or raw) into a NumPy array.

    The array has the file's shape and dtype, in native byte order.
    Raises DataError, naming the file, if it is not a valid IDX file.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC or path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise DataError(f"{path} is not a valid gzip file ({e}); "
                            "delete it and download again") from e

    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in DTYPES:
        raise DataError(f"{path} is not an IDX file: bad magic number "
                        f"{data[:4].hex(' ') or '(empty file)'}")
    dtype, ndim = DTYPES[data[2]], data[3]

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path} is truncated: the header needs {header_size} bytes, "
                        f"found {len(data)}; delete it and download again")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))

    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(data) - header_size
    if found < expected:
        raise DataError(f"{path} is truncated: expected {expected} bytes of data, "
                        f"found {found}; delete it and download again")
    if found > expected:
        raise DataError(f"{path} is damaged: expected {expected} bytes of data, "
                        f"found {found} (extra bytes at the end)")

    array = np.frombuffer(data, dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable copy, native byte order
