"""write_atomically: the file appears whole or not at all, and killed writes are cleaned up later."""
import os
import subprocess
import sys

import pytest

from tinynet.utils.atomic_write import temporary_prefix, write_atomically

pytestmark = pytest.mark.host_only("files only")


def test_the_file_appears_whole(tmp_path):
    path = tmp_path / "data.bin"
    write_atomically(path, lambda f: f.write(b"abc"))
    assert path.read_bytes() == b"abc" and os.listdir(tmp_path) == ["data.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"good")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, fail)
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["data.bin"]


def test_temporaries_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "data.bin"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has ended
    stale = tmp_path / f"{temporary_prefix(path)}{dead_pid}-0123abcd"
    alive = tmp_path / f"{temporary_prefix(path)}{os.getpid()}-0123abcd"  # a write in progress (ours)
    other = tmp_path / f"{temporary_prefix(tmp_path / 'other.bin')}{dead_pid}-0123abcd"  # another file's
    for leftover in (stale, alive, other):
        leftover.write_bytes(b"partial")
    write_atomically(path, lambda f: f.write(b"abc"))
    assert sorted(os.listdir(tmp_path)) == sorted(["data.bin", alive.name, other.name])
