"""Reading a ``.npz`` archive that may be damaged or hostile, without trusting it.

A ``.npz`` file is a zip of ``.npy`` arrays, each a small header (shape, dtype) and
then the data. ``numpy.load`` allocates what a header claims before reading the
data, so a 2 KB file can ask for gigabytes. Here the headers are read first
(``headers``), every size they claim is checked against the bytes the archive
really holds, and pickled objects are refused; the caller checks the shapes
against what it expects, and only then reads the data (``read``).
"""
import math
import zipfile
import zlib

import numpy

ZIP_MAGIC = b"PK\x03\x04"  # the first bytes of every zip archive, and so of every .npz
MAX_DEFLATE_RATIO = 1032  # deflate packs at most ~1032 bytes into one: a larger claim is a lie
_BROKEN = (OSError, EOFError, ValueError, KeyError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)


class UnreadableArchive(ValueError):
    """The file is not a .npz archive of plain arrays; the message says why."""


def open_archive(file):
    """An open binary ``file`` read as a zip archive, as every .npz is (a ``zipfile.ZipFile``: use it in a
    ``with``; closing it leaves ``file`` open). Given the file, not its path, the caller reads one file
    throughout, even if another is renamed onto its path meanwhile."""
    start = file.read(len(ZIP_MAGIC))
    if start != ZIP_MAGIC:
        raise UnreadableArchive("it is empty" if not start else "it is not a zip archive, as every .npz file is")
    try:
        return zipfile.ZipFile(file)
    except _BROKEN as e:
        raise UnreadableArchive(f"it cannot be read as an .npz archive of plain arrays ({e})") from e


def headers(archive, file_size):
    """Each array's name -> (zip member, shape, dtype), from the .npy headers alone, with the sizes
    the headers claim checked against the bytes the archive holds for them."""
    entries = {}
    try:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.filename == name:
                raise ValueError(f"{info.filename} is not a .npy array")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{info.filename} is packed in a way numpy.savez never packs")
            with archive.open(info) as f:
                version = numpy.lib.format.read_magic(f)
                read_header = (numpy.lib.format.read_array_header_1_0 if version == (1, 0)
                               else numpy.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(f)
                header_size = f.tell()
            if dtype.hasobject:
                raise ValueError(f"{name} holds pickled Python objects; they are refused, since unpickling "
                                 "can run code")
            data_size = math.prod(shape) * dtype.itemsize
            packed_limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO)
            holds = info.file_size - header_size  # what the zip entry says it holds, after the array's header
            if data_size != holds or info.compress_size > file_size or info.file_size > packed_limit + 1024:
                what = "fewer" if data_size < holds else "more"
                raise ValueError(f"{name} claims {data_size} bytes of data, {what} than the archive holds for it")
            entries[name] = (info, tuple(shape), dtype)
    except _BROKEN as e:
        raise UnreadableArchive(f"it cannot be read as an .npz archive of plain arrays ({e})") from e
    return entries


def read(archive, name, info):
    """One array's data (its size already checked by ``headers``), never unpickled."""
    try:
        with archive.open(info) as f:
            return numpy.lib.format.read_array(f, allow_pickle=False)
    except _BROKEN as e:
        raise UnreadableArchive(f"it cannot be read as an .npz archive of plain arrays ({name}: {e})") from e
