"""Where data lives: the data and cache folders, and the catalogue of files the project can fetch.

Data folder (raw files, read-only is fine), first that is set:
    1. the `data_dir` argument, 2. $MODZOO_DATA_DIR, 3. ~/.cache/modzoo.
Cache folder (prepared ArrayRecord files and statistics, must be writable):
    1. the `cache_dir` argument, 2. $MODZOO_CACHE_DIR, 3. ~/.cache/modzoo/prepared.
Keeping the two apart lets the data folder be a read-only shared mount.
Prepared copies are named by `fingerprint(source)` (path, sizes and mtimes), so
an edited source file is prepared afresh.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib

from data.download import download

DATA_DIR_ENV = "MODZOO_DATA_DIR"
CACHE_DIR_ENV = "MODZOO_CACHE_DIR"
_USER_CACHE = pathlib.Path("~/.cache/modzoo")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder raw data files are looked up in (argument, then $MODZOO_DATA_DIR, then ~/.cache/modzoo)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or _USER_CACHE
    return pathlib.Path(chosen).expanduser().resolve()


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The writable folder for prepared data (argument, then $MODZOO_CACHE_DIR, then ~/.cache/modzoo/prepared)."""
    chosen = cache_dir if cache_dir is not None else os.environ.get(CACHE_DIR_ENV) or _USER_CACHE / "prepared"
    return pathlib.Path(chosen).expanduser().resolve()


def fingerprint(path: str | os.PathLike) -> str:
    """A short id that changes when the file or folder at `path` changes (path, sizes, mtimes)."""
    path = pathlib.Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    parts = [str(path)] + [f"{p.relative_to(path) if p != path else ''}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                           for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A data file by name, with its canonical URL (None when it has none) and checksums."""

    filename: str
    url: str | None
    sha256: str | None = None
    md5: str | None = None


TINY_SHAKESPEARE = RemoteFile(
    "tinyshakespeare.txt",
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
)
TINYSTORIES_SUBSET = RemoteFile(
    "tinystories_val_subset.txt",
    None,
    sha256="5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6",
)
CIFAR10_PYTHON = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)


def fetch(remote: RemoteFile, data_dir: str | os.PathLike | None = None, *, timeout: float = 60.0) -> pathlib.Path:
    """Path of `remote` in the data folder; a missing file is downloaded, verified and written atomically.

    A file already there is used as it is. Raises FileNotFoundError naming the
    file, the folder searched and the URL when the file is missing and cannot be
    downloaded (offline, or no canonical source).
    """
    folder = resolve_data_dir(data_dir)
    path = folder / remote.filename
    if path.is_file():
        return path
    if remote.url is None:
        raise FileNotFoundError(
            f"{remote.filename} not found in {folder} and it has no download source: put the file there,"
            f" or point ${DATA_DIR_ENV} (or data_dir=) at the folder that holds it"
        )
    try:
        return download(remote.url, path, sha256=remote.sha256, md5=remote.md5, timeout=timeout)
    except OSError as e:
        raise FileNotFoundError(
            f"{remote.filename} not found in {folder} and downloading it from {remote.url} failed ({e});"
            f" download it by hand into that folder, or point ${DATA_DIR_ENV} (or data_dir=) at a folder that has it"
        ) from e
