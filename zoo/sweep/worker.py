"""A sweep worker: ``python -m zoo.sweep.worker OPTIMIZER VALUE SWEEP_DIR CORE -- --config FILE[:ARG] ...``.

Runs one unit (:func:`zoo.sweep.runner.run_unit`) pinned to one core and reports each event as
one ``@@sweep {json}`` line on stdout for the coordinating process. It stops
after its current step, with that step's checkpoint, on SIGTERM or SIGINT, or
when the coordinator writes ``stop SIGNUM`` on its stdin or goes away (its
stdin closes: stopped as by SIGHUP), and then exits with
:data:`zoo.exits.PREEMPTED_EXIT`.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import threading


def _listen(requests) -> None:
    """Ask the run to stop when the coordinator says so on stdin (``stop SIGNUM``) or goes away."""
    line = sys.stdin.readline()
    words = line.split()
    requests.request(int(words[1]) if words[:1] == ["stop"] else signal.SIGHUP)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    optimizer, value, sweep_dir, core = argv[:split]
    spec_argv = argv[split + 1:]
    if hasattr(os, "sched_setaffinity"):
        # Pinned to one core before JAX starts, XLA:CPU runs single-threaded without changing a bit of its
        # results (an XLA flag such as --xla_cpu_multi_thread_eigen=false would change them, and then the rows'
        # commands would not reproduce them).
        os.sched_setaffinity(0, {int(core)})
    from zoo.cli import load_config
    from zoo.exits import PREEMPTED_EXIT, silence_stdout
    from zoo.sweep.runner import Stopped, run_unit
    from zoo.sweep.workers import EVENT
    from zoo.train import Preempted
    from zoo.train.preemption import preemption_requests

    config = load_config(spec_argv)

    def emit(event):
        try:
            print(EVENT + json.dumps(event), flush=True)
        except BrokenPipeError:  # the coordinator is gone: its stdin closing stops this worker
            silence_stdout()

    with preemption_requests() as requests:
        threading.Thread(target=_listen, args=(requests,), daemon=True).start()
        try:
            run_unit(config, " ".join(spec_argv[1:]), optimizer, int(value), pathlib.Path(sweep_dir), emit, requests)
        except (Preempted, Stopped):
            raise SystemExit(PREEMPTED_EXIT) from None


if __name__ == "__main__":
    main(sys.argv[1:])
