"""What every sweep config shares: per-point bookkeeping and the ``sweep`` section."""

from __future__ import annotations

import ml_collections


def sweep_section(*, axis: str, sizes, rates: dict[str, tuple[int, int]], seeds=(0, 1),
                  extend: int = 3) -> ml_collections.ConfigDict:
    """The ``sweep`` section (see :mod:`zoo.sweep.grid`); ``rates`` are inclusive log2 ranges per optimizer."""
    return ml_collections.ConfigDict({"axis": axis, "sizes": list(sizes), "seeds": list(seeds), "extend": extend,
                                      "rates": {k: list(v) for k, v in rates.items()}})


def point_bookkeeping(c: ml_collections.ConfigDict) -> None:
    """Sweep points evaluate once at the end, keep one checkpoint for resumption and sample nothing."""
    c.train.update({"log_every": 25, "eval_every": 0, "checkpoint_every": 100, "keep": 1, "sample_tokens": 0,
                    "norm_every": 100, "eval_batch_size": 256})
