"""Preemption: SIGTERM or SIGINT asks a run to stop after a step, with a checkpoint of it.

While :func:`preemption_requests` is active (main thread only) the first of
those signals only raises a request; the run loop asks
:meth:`Requests.stop_after` after each step, saves and commits that step's
checkpoint when it says so, and raises :meth:`Requests.preempted`.

One process stops after the step it is in. The processes of a multi-process
run must stop after the same step, since saving is collective: they agree
through the preemption sync protocol of JAX's coordination service, which
``jax.distributed.initialize`` connects to SIGTERM (a C++ handler; the
protocol is the one Orbax's checkpoint manager relies on). A process that
receives SIGTERM tells the coordinator (its notifier polls once a second);
every process then reports how many steps it has done and all stop after the
step one past the furthest, :func:`jax.experimental.multihost_utils.
reached_preemption_sync_point` answering True there on every process. The
count is of the steps this call has run (0 before the first, so a notice
during setup stops the run after its first step), and only the run loop
reports it (:mod:`zoo.train.checkpoint` turns Orbax's own reports off). SIGINT
is handed to that protocol as a SIGTERM of the process. A notice that comes
too late for the steps left lets the run finish instead, its last checkpoint
committed as always.

A second SIGINT, or a second SIGTERM to a single process, gets the behaviour
the process had before (SIGINT: KeyboardInterrupt, SIGTERM: usually death),
for whoever does not want to wait.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(RuntimeError):
    """The run stopped on a signal after saving a checkpoint of its last step; the same command resumes it."""

    def __init__(self, step: int, cause: str):
        self.step, self.cause = step, cause
        super().__init__(f"stopped by {cause} after saving the checkpoint of step {step}; "
                         "run the same command again to resume")


class Requests:
    """What the handlers saw (``signum`` of the first signal to this process, or None) and when to stop."""

    signum: int | None = None

    def __init__(self, processes: int = 1, agree: bool = False):
        self.processes, self.agree = processes, agree

    def request(self, signum: int) -> None:
        """Ask for a stop without a signal (a sweep's worker told by its coordinator); the first request stays,
        and a signal after it is still the first the handler takes, not the second that aborts."""
        if self.signum is None:
            self.signum = signum

    def stop_after(self, done: int) -> bool:
        """Whether to stop after the step just dispatched, the ``done``-th of this call (counted from 1).

        Every process must ask after every step with the same count: in a
        multi-process run the answer is the agreed sync point, True after the
        same step on all processes (a lock and a comparison, well under a
        microsecond per call when no notice is pending).
        """
        if self.agree:
            return multihost_utils.reached_preemption_sync_point(done)
        return self.stop_now()

    def stop_now(self) -> bool:
        """Whether to stop outside the step loop (one process only: several agree on steps alone)."""
        return self.processes == 1 and self.signum is not None

    def preempted(self, step: int) -> Preempted:
        """The exception that ends the run after ``step``'s checkpoint is committed."""
        if self.processes == 1:
            return Preempted(step, signal.Signals(self.signum).name)
        return Preempted(step, f"SIGTERM or SIGINT to one of the {self.processes} processes")


_OPEN: list[Requests] = []  # the requests of the preemption_requests that installed handlers, still open


@contextlib.contextmanager
def preemption_requests() -> Iterator[Requests]:
    """Turn SIGTERM and SIGINT into stop requests for the body; restore the previous handlers after.

    Outside the main thread (where Python cannot install handlers) nothing is
    installed and no request is made. In a multi-process run SIGTERM stays
    with JAX's preemption notifier and SIGINT is forwarded to it; with the
    preemption service turned off (``jax_enable_preemption_service``) the
    processes cannot agree on a step, so nothing is installed and a signal
    keeps its usual effect. Opened inside another (a sweep's run), it shares
    that one's requests and handlers.
    """
    if _OPEN:
        yield _OPEN[-1]
        return
    processes = jax.process_count()
    agree = processes > 1 and jax.config.jax_enable_preemption_service
    requests = Requests(processes, agree)
    if threading.current_thread() is not threading.main_thread() or (processes > 1 and not agree):
        yield requests
        return
    own = SIGNALS if processes == 1 else (signal.SIGINT,)
    previous = {s: signal.getsignal(s) for s in own}
    previous = {s: h for s, h in previous.items() if h is not None}  # None: installed outside Python, keep it

    def restore():
        for s, h in previous.items():
            signal.signal(s, h)

    taken = []  # the signals the handler took (a request without one does not count)

    def handler(signum, frame):
        if not taken:
            taken.append(signum)
            requests.request(signum)
            if agree:
                signal.raise_signal(signal.SIGTERM)  # to the notifier: the processes agree on a step
            return
        restore()
        signal.raise_signal(signum)

    for s in previous:
        signal.signal(s, handler)
    _OPEN.append(requests)
    try:
        yield requests
    finally:
        _OPEN.pop()
        restore()
