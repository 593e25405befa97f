"""Download one file over HTTP(S), verify its checksum while streaming, and write it atomically."""
from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import urllib.request

from data.atomic import atomic_path

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A download failed (network, cut-off transfer or checksum); nothing was left under the target name."""


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
) -> pathlib.Path:
    """Fetch `url` into `dest`, checking the sha256 and/or md5 given; return `dest`.

    The body streams into a temporary file beside `dest` and is renamed onto
    `dest` only when it is complete (the Content-Length, when the server sends
    one, is met) and every given checksum matches. On any failure the temporary
    file is removed and a DownloadError names the URL, the target and the cause.
    """
    if sha256 is None and md5 is None:
        raise ValueError(f"download of {url}: give sha256= or md5= so the file can be verified")
    dest = pathlib.Path(dest)
    expected = {k: v.lower() for k, v in (("sha256", sha256), ("md5", md5)) if v}
    hashes = {k: hashlib.new(k) for k in expected}
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                length = response.headers.get("Content-Length")
                received = 0
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    f.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # URLError, HTTPError and timeouts are OSErrors
            raise DownloadError(f"download of {url} into {dest} failed: {e}; nothing was written, try again") from e
        except http.client.HTTPException as e:  # IncompleteRead and friends are not OSErrors
            raise DownloadError(
                f"download of {url} into {dest} was cut off: {e!r}; nothing was written, try again"
            ) from e
        if length is not None and received != int(length):
            raise DownloadError(
                f"download of {url} into {dest} was cut off after {received} of {length} bytes;"
                " nothing was written, try again"
            )
        for name, want in expected.items():
            got = hashes[name].hexdigest()
            if got != want:
                raise DownloadError(
                    f"checksum mismatch for {url}: {name} expected {want}, got {got}; nothing was written to {dest}"
                    " (the download is corrupt or the source changed: try again, or fetch the file by hand)"
                )
    return dest
