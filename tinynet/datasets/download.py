"""Download files safely: verified by sha256, written atomically.

A download streams into a temporary file next to the destination
(``tinynet.utils.atomic_write``). Only when all bytes have arrived and the sha256
matches is it renamed onto the destination, so a half-finished or wrong file
never appears under the real name, and a killed download leaves nothing for long.
"""

import hashlib
import http.client
import sys
import urllib.request
from pathlib import Path

from tinynet.utils.atomic_write import write_atomically

CHUNK = 1 << 16  # read the network stream 64 KiB at a time


class DownloadError(OSError):
    """No URL gave a complete file with the right sha256."""


def sha256_of(path):
    """Return the hex sha256 digest of the file at `path`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(urls, dest, sha256, timeout=30, progress=True):
    """Download `dest` from the first of `urls` that works, and return its Path.

    Each URL is tried in turn; a URL fails if the server answers with an
    error, the connection breaks or stalls for `timeout` seconds, fewer bytes
    arrive than announced, or the sha256 differs from `sha256`. If every URL
    fails, raise DownloadError listing each URL and why. `dest` is only ever
    written whole and verified. `progress=False` keeps it quiet.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _download_one(url, dest, sha256, timeout, progress)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as e:
            why = str(e) or type(e).__name__
            failures.append(f"  {url}\n    -> {why}")
            if progress:
                _say(f"  failed: {why}\n")
    tried = "\n".join(failures) or "  (no URLs given)"
    raise DownloadError(
        f"Could not download {dest.name}. Tried:\n{tried}\n"
        f"To get it by hand: download {dest.name} from one of the URLs above "
        f"(browser or curl), check that its sha256 is {sha256}, put it in a "
        f"folder with the dataset's other files, and set the environment "
        f"variable TINYNET_DATA_DIR to that folder.")


def _download_one(url, dest, sha256, timeout, progress):
    """Fetch one URL into a temporary file, verify it, then move it onto `dest`."""
    if progress:
        _say(f"Downloading {url}\n")

    def fetch(f):
        request = urllib.request.Request(url, headers={"User-Agent": "tinynet"})
        with urllib.request.urlopen(request, timeout=timeout) as r:
            length = r.headers.get("Content-Length")
            total = int(length) if length else None
            got, digest = _copy(r, f, total, show=progress and sys.stderr.isatty())
        if total is not None and got != total:
            raise ConnectionError(f"transfer interrupted: got {got} of {total} bytes")
        if digest != sha256:
            raise DownloadError(f"sha256 mismatch: expected {sha256}, got {digest}")
        return got

    write_atomically(dest, fetch)  # renamed onto dest only if fetch succeeds
    if progress:
        _say(f"Saved {dest} ({dest.stat().st_size / 1e6:.1f} MB, sha256 ok)\n")


def _copy(response, f, total, show):
    """Copy the response body into file `f`; return (bytes copied, sha256 hex).

    With `show`, keep a one-line progress display up to date on stderr.
    """
    h, got, shown = hashlib.sha256(), 0, None
    try:
        while chunk := response.read(CHUNK):
            f.write(chunk)
            h.update(chunk)
            got += len(chunk)
            if show and (line := _progress_line(got, total)) != shown:
                _say("\r" + line)
                shown = line
    finally:
        if shown:
            _say("\n")  # end the progress line, whatever happened
    return got, h.hexdigest()


def _progress_line(got, total):
    """Return e.g. '  3.1 / 9.9 MB (31%)' for the in-place progress display."""
    if not total:
        return f"  {got / 1e6:.1f} MB"
    return f"  {got / 1e6:.1f} / {total / 1e6:.1f} MB ({100 * got // total}%)"


def _say(text):
    sys.stderr.write(text)
    sys.stderr.flush()
