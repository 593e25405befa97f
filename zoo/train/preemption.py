"""Preemption: SIGTERM or SIGINT asks a run to stop after its current step, with a checkpoint of it.

While :func:`preemption_requests` is active (main thread only) the first of
those signals only sets a flag; the run loop checks it after each step, saves
and commits that step's checkpoint, and raises :class:`Preempted`. A second
signal gets the behaviour the process had before (SIGINT: KeyboardInterrupt,
SIGTERM: usually death), for whoever does not want to wait.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(RuntimeError):
    """The run stopped on a signal after saving a checkpoint of its last step; the same command resumes it."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum
        super().__init__(f"stopped by {signal.Signals(signum).name} after saving the checkpoint of step {step}; "
                         "run the same command again to resume")


class Requests:
    """What the handlers saw: ``signum`` of the first signal, or None."""

    signum: int | None = None


@contextlib.contextmanager
def preemption_requests(enabled: bool = True) -> Iterator[Requests]:
    """Turn SIGTERM and SIGINT into a request flag for the body; restore the previous handlers after.

    Not ``enabled``, or outside the main thread (where Python cannot install
    handlers), nothing is installed and the flag never rises. (Multi-process
    runs pass ``enabled=False``: their processes would have to agree on the
    step to stop at, so a signal there keeps its usual effect and the restart
    resumes from the last periodic checkpoint.)
    """
    requests = Requests()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requests
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    previous = {s: h for s, h in previous.items() if h is not None}  # None: installed outside Python, keep it

    def restore():
        for s, h in previous.items():
            signal.signal(s, h)

    def handler(signum, frame):
        if requests.signum is None:
            requests.signum = signum
            return
        restore()
        signal.raise_signal(signum)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield requests
    finally:
        restore()
