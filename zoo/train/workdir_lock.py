"""One run per workdir: an exclusive OS lock on ``<workdir>/.lock`` for as long as the run lives.

The lock is ``flock(2)`` on an open file, so the kernel drops it the moment
its holder exits in any way (SIGKILL and crashes included): a lock left by a
killed run is never stale, the next run simply takes it. The file holds the
holder's PID and host, for the message a refused run prints; it is never
deleted (removing a lock file lets two processes lock two different files).
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


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """Hold ``<workdir>/.lock`` exclusively for the body; raise :class:`WorkdirLocked` at once if taken."""
    path = pathlib.Path(workdir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").split()
            who = f"process {holder[0]} on {holder[1]}" if len(holder) == 2 else "another process"
            raise WorkdirLocked(f"{workdir} is in use by {who}; wait for that run to end or use another "
                                "--workdir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
