"""Training: the run function, meshes and shardings, checkpoints, metrics."""

from zoo.train.loop import ConfigError, Diverged, Run, evaluate, train
from zoo.train.preemption import Preempted
from zoo.train.workdir_lock import WorkdirLocked

__all__ = ["ConfigError", "Diverged", "Preempted", "Run", "WorkdirLocked", "evaluate", "train"]
