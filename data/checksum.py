"""File checksums: the project's one digest helper, and remembered verification of known data files.

`file_digest` hashes a file in chunks (sha256 by default). `verify` compares a
file with its expected checksum once and remembers the match in a small JSON
record (the file's path, size, mtime and checksum); while the file keeps that
path, size and mtime, later calls trust the record instead of hashing again.
data.paths keeps the records beside the file's prepared copy in the cache folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib

from data.atomic import write_bytes

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A known data file's bytes differ from its catalogue checksum; the one-line message says how to fix it."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes with a hashlib algorithm ('sha256', 'md5', ...)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _entry(path: pathlib.Path, algorithm: str, digest: str) -> dict:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, algorithm: digest}


def remember(path: str | os.PathLike, record: str | os.PathLike, algorithm: str, digest: str) -> None:
    """Record (atomically) that `path`, as it is now, has this digest.

    The record only saves a later hash, so a cache folder that cannot be
    written is no error: the file is simply hashed again next time.
    """
    try:
        write_bytes(record, json.dumps(_entry(pathlib.Path(path), algorithm, digest)).encode())
    except OSError:
        pass


def verify(path: str | os.PathLike, algorithm: str, expected: str, record: str | os.PathLike, fix: str) -> None:
    """Check that the file at `path` has digest `expected`, unless `record` says it already did.

    Raises ChecksumError naming the file, both checksums and `fix` (what the
    user should do) when the bytes differ; records a match.
    """
    path, record = pathlib.Path(path), pathlib.Path(record)
    expected = expected.lower()
    try:
        if json.loads(record.read_text()) == _entry(path, algorithm, expected):
            return
    except (OSError, ValueError):
        pass  # no record yet, or an unreadable one: hash the file
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(
            f"{path} is not the expected file (truncated, corrupt or replaced): {algorithm} expected {expected},"
            f" got {actual}; {fix}"
        )
    remember(path, record, algorithm, actual)
