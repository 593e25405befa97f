"""One run per workdir: an exclusive OS lock on ``<workdir>/.lock``, taken before anything else the run does.

The lock is ``flock(2)`` on an open file, so the kernel drops it the moment
its holder exits in any way (SIGKILL and crashes included): a lock left by a
killed run is never stale, the next run simply takes it. The file holds the
holder's PID and host, for the message a refused run prints.

A run takes the lock first, before it builds anything, so a second run is
refused at once whether the workdir is new or not; a missing workdir is
created for that. If the run is refused afterwards (a bad config) while the
workdir holds nothing but the lock, what this lock created (the file, the
workdir, missing folders above it) is removed again: a refused run leaves
nothing behind. Removing a lock file is only safe because every taker checks,
once it holds a lock, that the file it locked is still the one at the path
(the holder unlinks it before releasing it); a taker that locked a removed
file starts again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import socket
from collections.abc import Iterator

LOCK_NAME = ".lock"


class WorkdirLocked(RuntimeError):
    """Another live process holds the workdir's lock."""


def _make_folders(folder: pathlib.Path) -> list[pathlib.Path]:
    """Create ``folder`` and any missing folder above it; return those this call created, innermost first."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    made = []
    for f in reversed(missing):
        try:
            f.mkdir()
            made.append(f)
        except FileExistsError:  # another run made it meanwhile: it is not ours to remove
            pass
    return made[::-1]


def _open(path: pathlib.Path) -> tuple[int, bool] | None:
    """(descriptor, whether this call created the file) of the lock file, or None if its folder vanished."""
    for flags in (os.O_CREAT | os.O_EXCL, 0):
        try:
            return os.open(path, os.O_RDWR | flags, 0o644), bool(flags)
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
    return None  # created and removed again between the two attempts


def _is(fd: int, path: pathlib.Path) -> bool:
    """Whether ``fd`` is the file at ``path`` now (not one a refused run removed after this process opened it)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """Hold ``<workdir>/.lock`` exclusively for the body, creating ``workdir`` if missing; raise
    :class:`WorkdirLocked` at once if another process holds it. If the body raises while the workdir holds
    nothing but the lock, the lock file and the folders this call created are removed (module docstring)."""
    workdir = pathlib.Path(workdir)
    path, made = workdir / LOCK_NAME, []
    while True:
        made += _make_folders(workdir)
        opened = _open(path)
        if opened is None:
            continue
        fd, created = opened
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").split()
            os.close(fd)
            who = f"process {holder[0]} on {holder[1]}" if len(holder) == 2 else "another process"
            raise WorkdirLocked(f"{workdir} is in use by {who}; wait for that run to end or use another "
                                "--workdir") from None
        if _is(fd, path):
            break
        os.close(fd)  # closing releases the lock on the removed file
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    except BaseException:
        if created and os.listdir(workdir) == [LOCK_NAME]:
            os.unlink(path)  # still locked: whoever opened it meanwhile finds it gone and starts again
            for folder in made:  # innermost first; one that another run has filled meanwhile stays
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
