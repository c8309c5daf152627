"""Downloading MNIST from mirrors: a server on 127.0.0.1 started by the tests, and file:// URLs."""

import gzip
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import mnist_io
from conftest import PROJECT_DIR
from errors import UserError

NAME = "t10k-labels-idx1-ubyte"
CONTENT = bytes([0, 0, 8, 1, 0, 0, 0, 5, 7, 2, 1, 0, 4])  # an IDX file of five labels
CHECKSUMS = {NAME: hashlib.sha256(CONTENT).hexdigest()}
GOOD = gzip.compress(CONTENT)
FLIPPED = GOOD[:12] + bytes([GOOD[12] ^ 0xFF]) + GOOD[13:]
CLIENT_TIMEOUT = 1.0
STALL_SECONDS = 5.0


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Serves /<behaviour>/<file>: the behaviour decides what a request for any file gets."""

    files = {}  # path under /good/ -> bytes, for the real-data test

    def do_GET(self):
        behaviour, _, name = self.path.strip("/").partition("/")
        if behaviour == "good":
            self.reply(self.files.get(name, GOOD))
        elif behaviour == "flipped":
            self.reply(FLIPPED)
        elif behaviour == "html":
            self.reply(b"<html><body>Access denied</body></html>", "text/html")
        elif behaviour == "missing":
            self.send_error(404)
        elif behaviour == "truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[: len(GOOD) // 2])
            self.close_connection = True
        elif behaviour == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[:4])
            self.wfile.flush()
            time.sleep(STALL_SECONDS)  # longer than the client's timeout
        self.server.requests.append(self.path)

    def reply(self, body, content_type="application/octet-stream"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    httpd.daemon_threads = True
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def download(folder, mirrors):
    return mnist_io.download_file(NAME, folder, mirrors, timeout=CLIENT_TIMEOUT,
                                  checksums=CHECKSUMS)


def test_good_mirror_downloads_and_verifies(tmp_path, server):
    _, base = server
    path = download(tmp_path, [f"{base}/good/"])
    assert path == tmp_path / (NAME + ".gz")
    assert gzip.decompress(path.read_bytes()) == CONTENT
    assert os.listdir(tmp_path) == [NAME + ".gz"]


@pytest.mark.parametrize("behaviour, reason", [
    ("flipped", ""),
    ("html", "HTML page"),
    ("missing", "Not Found"),
    ("truncated", ""),
    ("stall", "timed out"),
])
def test_bad_mirror_falls_through_to_next(tmp_path, server, capsys, behaviour, reason):
    _, base = server
    started = time.monotonic()
    path = download(tmp_path, [f"{base}/{behaviour}/", f"{base}/good/"])
    assert time.monotonic() - started < STALL_SECONDS
    assert gzip.decompress(path.read_bytes()) == CONTENT
    assert os.listdir(tmp_path) == [NAME + ".gz"]
    stderr = capsys.readouterr().err
    assert f"download failed: {base}/{behaviour}/{NAME}.gz" in stderr
    assert reason in stderr


def test_refused_connection_falls_through(tmp_path, server, capsys):
    _, base = server
    # A port that was just free: nothing listens there, so the connection is refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    path = download(tmp_path, [f"http://127.0.0.1:{closed_port}/", f"{base}/good/"])
    assert gzip.decompress(path.read_bytes()) == CONTENT
    assert "refused" in capsys.readouterr().err.lower()
    assert os.listdir(tmp_path) == [NAME + ".gz"]


def test_every_mirror_failing_gives_one_message(tmp_path, server):
    _, base = server
    mirrors = [f"{base}/{behaviour}/" for behaviour in ("flipped", "html", "missing")]
    with pytest.raises(UserError) as caught:
        download(tmp_path, mirrors)
    message = str(caught.value)
    for mirror in mirrors:
        assert mirror + NAME + ".gz" in message
    assert "Download it from" in message
    assert os.listdir(tmp_path) == []


def test_interrupted_download_leaves_nothing(tmp_path, server, monkeypatch):
    _, base = server

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist_io, "content_sha256", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download(tmp_path, [f"{base}/good/"])
    assert os.listdir(tmp_path) == []


def test_file_mirror_and_no_second_download(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv(mnist_io.MIRRORS_VARIABLE, f"file:///nonexistent/ {mnist_dir.as_uri()}")
    data_dir = tmp_path / "data"
    mnist_io.ensure_files(data_dir, mnist_io.SPLITS["test"])
    assert sorted(os.listdir(data_dir)) == sorted(n + ".gz" for n in mnist_io.SPLITS["test"])

    def fail(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(mnist_io, "download_file", fail)
    mnist_io.ensure_files(data_dir, mnist_io.SPLITS["test"], verify=True)


def test_offline_never_downloads(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(mnist_io, "download_file", fail)
    with pytest.raises(UserError, match="MNIST files not found"):
        mnist_io.ensure_files(tmp_path, offline=True)
    monkeypatch.setenv(mnist_io.OFFLINE_VARIABLE, "1")
    with pytest.raises(UserError, match="MNIST files not found"):
        mnist_io.ensure_files(tmp_path)


def test_verify_rejects_damaged_file(tmp_path, monkeypatch):
    (tmp_path / (NAME + ".gz")).write_bytes(gzip.compress(CONTENT + b"x"))
    monkeypatch.setattr(mnist_io, "SHA256", dict(mnist_io.SHA256, **CHECKSUMS))
    with pytest.raises(UserError, match="wrong SHA-256"):
        mnist_io.ensure_files(tmp_path, [NAME], verify=True)


def test_train_downloads_into_empty_folder(tmp_path, server, mnist_dir):
    httpd, base = server
    MirrorHandler.files = {path.name: path.read_bytes() for path in mnist_dir.glob("*.gz")}
    environment = dict(os.environ, **{mnist_io.MIRRORS_VARIABLE: f"{base}/good/"})
    result = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "train.py"), "--epochs", "1", "--train-size", "2000",
         "--test-size", "500", "--data-dir", str(tmp_path / "data"), "--weights",
         str(tmp_path / "pesos.json")],
        capture_output=True, text=True, timeout=600, env=environment)
    MirrorHandler.files = {}
    assert result.returncode == 0, result.stderr
    assert "epoch  1/1" in result.stdout
    assert sorted(os.listdir(tmp_path / "data")) == sorted(n + ".gz" for n in mnist_io.FILE_NAMES)
    assert len(httpd.requests) == 4
