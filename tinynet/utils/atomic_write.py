"""Writing a file so that a crash never leaves half of it under its name.

``write_atomically(path, write)`` calls ``write(file)`` on a temporary file beside
``path`` and renames it onto ``path`` only when the writing has succeeded
(``os.replace`` is atomic). If anything fails the temporary file is removed and
``path`` is left as it was. A ``path`` that is a symbolic link keeps its link: the
file it points to is replaced. A process killed meanwhile cannot remove it: its name
``.<name>.tmp-<host>-<pid>-<random>`` holds the host and the process number, so the
next write to ``path`` removes the temporary files of processes no longer running.
Model files (``model.save``) and downloads (``tinynet.datasets``) are written this way.
"""
import errno
import glob
import os
import re
import secrets
import socket
from pathlib import Path


# The disk refused the bytes: full, over quota, too large a file, failing, or read-only
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}


def write_atomically(path, write):
    """Call ``write(file)`` on a temporary file beside ``path`` (a ``pathlib.Path``), then rename it
    onto ``path``. (The temporary file is created with ``open(..., 'xb')``, not ``tempfile.mkstemp``,
    so the file gets the usual permissions rather than owner-only ones.)"""
    if path.is_symlink():  # replace the file it points to, as open(path, "wb") would write there, not the link
        path = Path(os.path.realpath(path))
    remove_stale_temporaries(path)
    tmp = path.with_name(f"{temporary_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        file = open(tmp, "xb")
    except PermissionError as e:
        raise PermissionError(f"Cannot write {path}: no permission to create files in {path.parent}.") from e
    except OSError as e:  # a read-only file system, a full disk, ...: name the target, not the temporary file
        raise _naming(path, e) from e
    try:
        with file as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in DISK_ERRORS:  # name the file, not the temporary one (a network error, say, stays as it is)
            raise _naming(path, e, " (a file already there is left unchanged)") from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _naming(path, error, note=""):
    """``error`` again (its errno, so its type), its message naming ``path``: "Cannot write model.npz: ..."."""
    return OSError(error.errno, f"Cannot write {path}: {error.strerror}{note}")


def temporary_prefix(path):
    """The start of the temporary files' names for ``path`` on this host: ``.model.npz.tmp-<host>-``;
    the process number and a random part follow."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())
    return f".{path.name}.tmp-{host}-"


def remove_stale_temporaries(path):
    """Remove the temporary files that saves to ``path`` on this host left when their process was killed."""
    prefix = temporary_prefix(path)
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*"):
        match = re.fullmatch(r"(\d+)-[0-9a-f]{8}", tmp.name[len(prefix):])
        if match and not _running(int(match[1])):
            try:
                tmp.unlink()
            except OSError:  # gone meanwhile, or not ours to remove: it does no harm
                pass


def _running(pid):
    """Whether a process with this number runs on this host (always True where that cannot be asked)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would stop the process on Windows
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # none of that number (or no number a process can have)
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True
