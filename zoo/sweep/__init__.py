"""Learning-rate sweeps across width or depth: ``modzoo sweep --config configs/sweeps/NAME.py --workdir DIR``.

:mod:`zoo.sweep.grid` defines the points, :mod:`zoo.sweep.runner` runs them
(resumable, in parallel worker processes), :mod:`zoo.sweep.report` writes
``results.csv``, ``sweep.png``, ``size.png`` and ``summary.md``.
"""

from zoo.sweep.runner import sweep

__all__ = ["sweep"]
