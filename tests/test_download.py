"""Tests for tinynet.datasets.download against a local HTTP server (no internet)."""

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tinynet.datasets.download import DownloadError, download, sha256_of

pytestmark = pytest.mark.host_only("downloading files touches no arrays")

BODY = bytes(range(256)) * 1000  # 256 kB, several read chunks
SHA = hashlib.sha256(BODY).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """Serves `server.routes`: path -> (body, announced length, seconds to stall)."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, length, stall = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        time.sleep(stall)
        self.close_connection = True  # then hang up, even if fewer bytes were sent

    def log_message(self, *args):
        pass  # keep test output clean


@pytest.fixture
def server():
    """A server on 127.0.0.1; tests fill `server.routes`; `server.url(p)` gives a URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.routes, srv.requests = {}, []
    srv.url = lambda p: f"http://127.0.0.1:{srv.server_address[1]}{p}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def serve(server, path, body=BODY, length=None, stall=0):
    server.routes[path] = (body, len(body) if length is None else length, stall)
    return server.url(path)


def test_good_file(server, tmp_path):
    url = serve(server, "/data.bin")
    dest = tmp_path / "sub" / "data.bin"
    assert download([url], dest, SHA, progress=False) == dest
    assert dest.read_bytes() == BODY
    assert sha256_of(dest) == SHA
    assert [p.name for p in dest.parent.iterdir()] == ["data.bin"]  # no temp file left


def test_wrong_hash(server, tmp_path):
    url = serve(server, "/data.bin", body=BODY[:-1] + b"X")
    with pytest.raises(DownloadError, match="sha256 mismatch") as e:
        download([url], tmp_path / "data.bin", SHA, progress=False)
    assert url in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer(server, tmp_path):
    url = serve(server, "/data.bin", length=len(BODY) + 5000)  # promises more than it sends
    with pytest.raises(DownloadError, match=f"interrupted: got {len(BODY)} of {len(BODY) + 5000}"):
        download([url], tmp_path / "data.bin", SHA, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_stalled_transfer_times_out(server, tmp_path):
    url = serve(server, "/data.bin", body=BODY[:1000], length=len(BODY), stall=1.0)
    with pytest.raises(DownloadError, match="timed out"):
        download([url], tmp_path / "data.bin", SHA, timeout=0.2, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_falls_back_to_next_mirror(server, tmp_path):
    missing = server.url("/mirror1/data.bin")  # 404
    broken = serve(server, "/mirror2/data.bin", length=len(BODY) * 2)
    good = serve(server, "/mirror3/data.bin")
    dest = tmp_path / "data.bin"
    download([missing, broken, good], dest, SHA, progress=False)
    assert dest.read_bytes() == BODY
    assert server.requests == ["/mirror1/data.bin", "/mirror2/data.bin", "/mirror3/data.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_connection_refused_then_good(server, tmp_path):
    with socket.socket() as s:  # find a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/data.bin"
    dest = tmp_path / "data.bin"
    download([dead, serve(server, "/data.bin")], dest, SHA, progress=False)
    assert dest.read_bytes() == BODY


def test_all_fail_lists_each_url_and_what_to_do(server, tmp_path):
    urls = [server.url("/a/data.bin"), serve(server, "/b/data.bin", body=b"wrong")]
    with pytest.raises(DownloadError) as e:
        download(urls, tmp_path / "data.bin", SHA, progress=False)
    msg = str(e.value)
    assert isinstance(e.value, OSError)
    assert f"{urls[0]}\n    -> HTTP Error 404" in msg
    assert f"{urls[1]}\n    -> sha256 mismatch" in msg
    assert "TINYNET_DATA_DIR" in msg and SHA in msg


def test_failed_download_keeps_existing_file(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"the old, good file")
    url = serve(server, "/data.bin", length=len(BODY) + 1)
    with pytest.raises(DownloadError):
        download([url], dest, SHA, progress=False)
    assert dest.read_bytes() == b"the old, good file"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_progress_messages(server, tmp_path, capsys):
    url = serve(server, "/data.bin")
    download([url], tmp_path / "a.bin", SHA)  # stderr is not a tty here: start/finish lines
    err = capsys.readouterr().err
    assert f"Downloading {url}" in err and "sha256 ok" in err and "\r" not in err
    download([url], tmp_path / "b.bin", SHA, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_on_a_tty(server, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    download([serve(server, "/data.bin")], tmp_path / "a.bin", SHA)
    err = capsys.readouterr().err
    assert "\r  0.3 / 0.3 MB (100%)\n" in err
