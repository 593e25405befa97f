"""Downloads against a local HTTP server: success, checksum mismatch, cut-off transfer, offline lookups."""
import contextlib
import hashlib
import http.server
import threading

import pytest

import data
from data import checksum
from data.paths import RemoteFile

PAYLOAD = bytes(range(256)) * 4000  # 1 MB, several read chunks


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path == "/cut":
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])  # then the connection closes mid-body
        else:
            self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server():
    """An HTTP server on 127.0.0.1 in a thread; it stops itself when the block ends (and serves 60 s at most)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.timeout = 1
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stop = threading.Timer(60, server.shutdown)
    stop.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.cancel()
        server.shutdown()
        server.server_close()
        thread.join(5)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_and_writes(tmp_path):
    with local_server() as url:
        dest = data.download(f"{url}/file", tmp_path / "f.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                             md5=hashlib.md5(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD and leftovers(tmp_path) == ["f.bin"]


def test_checksum_mismatch_leaves_no_file(tmp_path):
    with local_server() as url, pytest.raises(data.DownloadError, match="checksum mismatch .* md5 expected 0+, got"):
        data.download(f"{url}/file", tmp_path / "f.bin", md5="0" * 32)
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_no_partial_file(tmp_path):
    cut_off = r"/cut into .*f.bin was cut off after 341333 of 1024000 bytes"
    with local_server() as url, pytest.raises(data.DownloadError, match=cut_off):
        data.download(f"{url}/cut", tmp_path / "f.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert leftovers(tmp_path) == []


def test_fetch_downloads_once_then_uses_the_verified_local_file(tmp_path, monkeypatch):
    folder, cache = tmp_path / "data", tmp_path / "cache"
    with local_server() as url:
        remote = RemoteFile("t.txt", f"{url}/file", sha256=hashlib.sha256(PAYLOAD).hexdigest())
        assert data.fetch(remote, folder, cache_dir=cache).read_bytes() == PAYLOAD
    with monkeypatch.context() as patch:  # server gone: the local copy is used, its download's check remembered
        patch.setattr(checksum, "file_digest", lambda *a: pytest.fail("an unchanged verified file was hashed"))
        assert data.fetch(remote, folder, cache_dir=cache).read_bytes() == PAYLOAD
    (folder / "t.txt").write_bytes(b"local copy")  # a changed file is checked again, and refused
    changed = hashlib.sha256(b"local copy").hexdigest()
    with pytest.raises(data.ChecksumError, match=f"t.txt is not the expected file .* got {changed}"):
        data.fetch(remote, folder, cache_dir=cache)


def test_offline_fetch_names_file_folder_and_url(tmp_path):
    with local_server() as url:
        pass  # the port is closed now: connecting fails at once, like an offline machine
    remote = RemoteFile("tinyshakespeare.txt", f"{url}/input.txt", sha256="0" * 64)
    with pytest.raises(FileNotFoundError) as err:
        data.fetch(remote, tmp_path)
    message = str(err.value)
    assert "tinyshakespeare.txt" in message and str(tmp_path) in message and f"{url}/input.txt" in message
    assert leftovers(tmp_path) == []


def test_download_requires_a_checksum(tmp_path):
    with pytest.raises(ValueError, match="give sha256= or md5="):
        data.download("http://127.0.0.1:9/x", tmp_path / "x")


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MODZOO_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("MODZOO_DATA_DIR")
    assert data.resolve_data_dir() == tmp_path / "home" / ".cache" / "modzoo"
    monkeypatch.delenv("MODZOO_CACHE_DIR", raising=False)
    assert data.resolve_cache_dir() == tmp_path / "home" / ".cache" / "modzoo" / "prepared"
    monkeypatch.setenv("MODZOO_CACHE_DIR", str(tmp_path / "c"))
    assert data.resolve_cache_dir() == tmp_path / "c"
