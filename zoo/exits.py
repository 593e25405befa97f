"""Exit statuses of modzoo's commands, and what a command does when its stdout's reader has gone.

Shared by the command line (:mod:`zoo.cli`) and the sweep's worker processes
(:mod:`zoo.sweep`), so the library does not import its command line.
"""

import os
import signal
import sys

DIVERGED_EXIT = 3
"""Exit status of ``modzoo train`` when the loss became non-finite."""
PREEMPTED_EXIT = 75
"""Exit status of ``modzoo train`` or ``sweep`` stopped by SIGTERM/SIGINT after checkpointing (EX_TEMPFAIL: run it
again)."""
CLOSED_STDOUT_EXIT = 128 + signal.SIGPIPE
"""Exit status when stdout's reader went away: what a shell reports for a program killed by SIGPIPE (141)."""


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone (a closed pipe), so that nothing written later, nor
    the flush at exit, fails again (the recipe of Python's ``signal`` docs, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
