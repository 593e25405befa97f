"""Training: the run function, meshes and shardings, checkpoints, metrics."""

from zoo.train.loop import Run, build_optimizer, evaluate, make_schedule, train

__all__ = ["Run", "build_optimizer", "evaluate", "make_schedule", "train"]
