"""Atomic file writes: a temp file beside the target, renamed into place only on success."""
from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside `dest`; on success it replaces `dest`, on error it is removed.

    Whatever the body writes to the yielded path appears under `dest` all at once
    (os.replace within one folder), so readers never see a partial file.
    """
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(dest: str | os.PathLike, payload: bytes) -> pathlib.Path:
    """Write `payload` to `dest` atomically (fsynced before the rename) and return the path.

    The file gets the usual permissions (0o666 less the umask: 0o644 under umask 022), as open() creates it.
    """
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
    return pathlib.Path(dest)
