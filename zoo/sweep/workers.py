"""A sweep's worker processes (``--parallel N``): start them, read their events, stop them on request.

Each worker (:mod:`zoo.sweep.worker`) runs one unit in its own session, so a
Ctrl-C at the terminal reaches the coordinating process alone; that process
passes a stop on to every worker exactly once, as a line ``stop SIGNUM`` on
the worker's stdin, never as a second signal (which would abort a run at
once). A worker whose stdin closes (the coordinator died) stops the same way.
A worker stops after its current step with that step's checkpoint and exits
with :data:`zoo.exits.PREEMPTED_EXIT`.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import threading

from zoo.exits import PREEMPTED_EXIT

EVENT = "@@sweep "
"""The prefix of a worker's event lines on its stdout (the rest is one JSON object)."""


def command(spec_argv: list[str], optimizer: str, value: int, sweep_dir: pathlib.Path, core: int) -> list[str]:
    """The command line of the worker that runs one unit pinned to ``core``."""
    return [sys.executable, "-m", "zoo.sweep.worker", optimizer, str(value), str(sweep_dir), str(core), "--",
            *spec_argv]


class Workers:
    """The live worker processes, and whether the sweep is stopping (then none starts, every live one is told)."""

    def __init__(self):
        self.lock, self.live, self.stopping = threading.Lock(), set(), False

    def start(self, argv: list[str]) -> subprocess.Popen | None:
        """Start a worker; None once the sweep is stopping."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.lock:
            if self.stopping:
                return None
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env, start_new_session=True)
            self.live.add(proc)
            return proc

    def ended(self, proc: subprocess.Popen) -> None:
        with self.lock:
            self.live.discard(proc)

    def stop(self, signum: int) -> None:
        """Tell every live worker, once, to stop after its current step; start no more."""
        with self.lock:
            if self.stopping:
                return
            self.stopping = True
            for proc in self.live:
                try:
                    proc.stdin.write(f"stop {signum}\n")
                    proc.stdin.flush()
                except (BrokenPipeError, ValueError):  # it has just exited
                    pass

    def kill(self) -> None:
        """Abort: SIGKILL every live worker (their last committed checkpoints stay good); start no more."""
        with self.lock:
            self.stopping = True
            for proc in self.live:
                proc.kill()


def run_worker(workers: Workers, argv: list[str], emit) -> bool:
    """Run one worker to its end, passing its events to ``emit``; return whether it finished its unit (not when
    it stopped on request, exit :data:`~zoo.exits.PREEMPTED_EXIT`, or never started); RuntimeError (with its
    output's tail) if it failed."""
    proc = workers.start(argv)
    if proc is None:
        return False
    tail = []
    try:
        for line in proc.stdout:
            if line.startswith(EVENT):
                emit(json.loads(line[len(EVENT):]))
            else:
                tail = (tail + [line.rstrip()])[-20:]
    finally:
        proc.wait()
        workers.ended(proc)
    if proc.returncode not in (0, PREEMPTED_EXIT):
        raise RuntimeError(f"sweep worker {' '.join(argv[3:5])} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return proc.returncode == 0


def run_all(units: list, parallel: int, job, requests) -> None:
    """Run ``job(workers, unit, core)`` for every unit on ``parallel`` threads, each lending its job one core;
    tell the workers to stop as soon as ``requests.signum`` is set (by a signal, a stopped worker's event or a
    closed stdout). An exception here (a second Ctrl-C) kills the workers; a failed job's error is raised at
    the end."""
    workers, slots, slot_lock = Workers(), list(range(parallel)), threading.Lock()

    def lend_a_core(unit):
        with slot_lock:
            core = slots.pop(0)
        try:
            job(workers, unit, core % (os.cpu_count() or 1))
        finally:
            with slot_lock:
                slots.append(core)

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(lend_a_core, u) for u in units]
        try:
            while concurrent.futures.wait(futures, timeout=0.1).not_done:
                if requests.signum is not None:
                    workers.stop(requests.signum)
        except BaseException:
            workers.kill()
            raise
    for f in futures:
        f.result()
