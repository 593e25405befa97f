"""Training: the run function, meshes and shardings, checkpoints, metrics."""

from zoo.train.loop import Diverged, Run, evaluate, train

__all__ = ["Diverged", "Run", "evaluate", "train"]
