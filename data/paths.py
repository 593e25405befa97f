"""Where data lives: the data and cache folders, and the catalogue of files the project can fetch.

Data folder (raw files, read-only is fine), first that is set:
    1. the `data_dir` argument, 2. $MODZOO_DATA_DIR, 3. ~/.cache/modzoo.
Cache folder (prepared ArrayRecord files and statistics, must be writable):
    1. the `cache_dir` argument, 2. $MODZOO_CACHE_DIR, 3. ~/.cache/modzoo/prepared.
Keeping the two apart lets the data folder be a read-only shared mount.
Prepared copies live in `prepared_root(source)`, named by `fingerprint(source)`
(path, sizes and mtimes), so an edited source file is prepared afresh.

Catalogue files found in the data folder are verified against their checksum
on first use; the match is recorded in `prepared_root(file)/source.json` (path,
size, mtime, checksum), so an unchanged file is not hashed again. A mismatch
raises ChecksumError; files outside the catalogue are never hashed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib

from data.checksum import remember, verify
from data.download import download

DATA_DIR_ENV = "MODZOO_DATA_DIR"
CACHE_DIR_ENV = "MODZOO_CACHE_DIR"
_USER_CACHE = pathlib.Path("~/.cache/modzoo")
VERIFIED_RECORD = "source.json"


class MissingDataError(FileNotFoundError):
    """A catalogue file is not in the data folder and could not be downloaded; the one-line message says what to do."""


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


def prepared_root(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The cache folder for everything prepared from the data at `path` as it is now (named by its fingerprint)."""
    path = pathlib.Path(path).expanduser().resolve()
    stem = path.name.split(".")[0] or "data"
    return resolve_cache_dir(cache_dir) / "tfds" / f"{stem}-{fingerprint(path)}"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A catalogue file: its name in the data folder, canonical URL (None when it has none) and checksums."""

    filename: str
    url: str | None
    sha256: str | None = None
    md5: str | None = None

    def __post_init__(self):
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"catalogue file {self.filename}: give sha256= or md5= so the file can be verified")

    @property
    def checksum(self) -> tuple[str, str]:
        """(algorithm, hex digest) that local copies are verified with: the sha256 when known, else the md5."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)


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
CIFAR10_JPG = RemoteFile(  # all 60,000 CIFAR-10 images re-encoded as JPEG in an image-folder tree
    "cifar10-jpg.tar.gz",
    None,
    sha256="9a5cd0bbb9483884a62079814acf5c9d679268561aff8c33b170a9f2642ba5d1",
)


def _fix(remote: RemoteFile, folder: pathlib.Path) -> str:
    if remote.url is None:
        return f"replace it with an intact copy of {remote.filename} (it has no download source)"
    return f"delete it so it is downloaded again, or download {remote.url} into {folder} yourself"


def fetch(
    remote: RemoteFile,
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    timeout: float = 60.0,
) -> pathlib.Path:
    """Path of `remote` in the data folder, verified; a missing file is downloaded, verified and written atomically.

    A file already there is checked against the catalogue checksum the first
    time it is used (ChecksumError, a ValueError, on a mismatch); the match is
    recorded in the cache folder so later calls do not hash it again. Raises
    MissingDataError (a FileNotFoundError) naming the file, the folder searched
    and the fix when the file is missing and cannot be downloaded (offline, or
    no canonical source).
    """
    folder = resolve_data_dir(data_dir)
    path = folder / remote.filename
    if path.is_file():
        verify(path, *remote.checksum, prepared_root(path, cache_dir) / VERIFIED_RECORD, _fix(remote, folder))
        return path
    place = f"put {remote.filename} in {folder}, or set ${DATA_DIR_ENV} (data_dir= in Python) to a folder that has it"
    if remote.url is None:
        raise MissingDataError(f"{remote.filename} not found in {folder} and it has no download source: {place}")
    try:
        download(remote.url, path, sha256=remote.sha256, md5=remote.md5, timeout=timeout)
    except OSError as e:  # DownloadError, or a data folder that cannot be written
        cause = " ".join(str(e.__cause__ or e).split())
        raise MissingDataError(
            f"{remote.filename} not found in {folder} and downloading {remote.url} failed ({cause}): {place}"
        ) from e
    remember(path, prepared_root(path, cache_dir) / VERIFIED_RECORD, *remote.checksum)  # download() verified it
    return path
