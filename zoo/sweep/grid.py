"""A sweep's points: optimizer x size x learning rate x seed, each one ``zoo.train.train`` run.

A sweep config is an ordinary run config (the base of every point, so
``modzoo train --config`` on the same file reproduces any point) with a
``sweep`` section::

    sweep.axis = "width"                 # the model field that is swept ("width" or "depth")
    sweep.sizes = [32, 64, 128, 256]
    sweep.rates = {"scion": [-8, -2], "normalized_adam": [-6, 0], ...}   # log2 of the rate, inclusive
    sweep.seeds = [0, 1]                 # the first over the whole grid, the rest at the optimum and both neighbours
    sweep.extend = 3                     # rates added beyond an edge optimum, at most this many per size

Rates are powers of two, so "one grid step" is a factor of 2 (an octave).
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep."""

    optimizer: str
    value: int
    exponent: int
    seed: int

    @property
    def learning_rate(self) -> float:
        return 2.0 ** self.exponent

    def id(self, axis: str) -> str:
        return f"{self.optimizer}-{axis}{self.value}-log2lr{self.exponent}-seed{self.seed}"


def check(config: ml_collections.ConfigDict) -> None:
    """Raise a one-line ValueError if the ``sweep`` section is malformed."""
    s = config.get("sweep")
    if s is None:
        raise ValueError("this config has no 'sweep' section; give a file from configs/sweeps/")
    if s.axis not in config.model:
        raise ValueError(f"sweep axis {s.axis!r} is not a field of the model ({', '.join(config.model.keys())})")
    if not s.sizes or any(int(v) < 1 for v in s.sizes):
        raise ValueError(f"sweep sizes must be positive sizes, got {list(s.sizes)}")
    for name, (lo, hi) in s.rates.items():
        if lo > hi:
            raise ValueError(f"rates for {name}: lowest exponent {lo} is above the highest {hi}")
    if not s.seeds:
        raise ValueError("sweep.seeds needs at least one seed")


def point_config(config: ml_collections.ConfigDict, point: Point) -> ml_collections.ConfigDict:
    """The run config of one point: the base with the size, optimizer, rate and seed set."""
    c = ml_collections.ConfigDict(config.to_dict())
    c.model[config.sweep.axis] = int(point.value)
    c.optim.name = point.optimizer
    c.optim.learning_rate = point.learning_rate
    c.seed = int(point.seed)
    return c


def command(config_spec: str, axis: str, point: Point, workdir: str) -> str:
    """The ``modzoo train`` command that runs ``point`` on its own (bit-identical on CPU)."""
    return (f"modzoo train --config {config_spec} --workdir {workdir} --config.model.{axis}={point.value} "
            f"--config.optim.name={point.optimizer} --config.optim.learning_rate={point.learning_rate!r} "
            f"--config.seed={point.seed}")


def best_exponent(results: dict[int, list[float]]) -> int | None:
    """The exponent whose mean validation loss is lowest (diverged points count as +inf)."""
    finite = {e: sum(v) / len(v) for e, v in results.items() if v and all(math.isfinite(x) for x in v)}
    return min(finite, key=finite.get) if finite else None


def next_extension(exponents: list[int], best: int | None) -> int | None:
    """The rate to add when the optimum sits on an edge of the grid tried so far, else None."""
    if best is None:  # everything diverged: try lower rates
        return min(exponents) - 1
    if best == min(exponents):
        return best - 1
    if best == max(exponents):
        return best + 1
    return None
