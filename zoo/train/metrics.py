"""Where a run's numbers go: JSON lines, TensorBoard event files and a progress bar."""

from __future__ import annotations

import json
import math
import pathlib

import jax
from tensorboardX import SummaryWriter
from tqdm.auto import tqdm


class MetricWriter:
    """Writes ``{"step": s, "split": name, **values}`` to ``metrics.jsonl`` and TensorBoard (process 0 only).

    Non-finite values are written as ``null``, so every line stays valid JSON.
    """

    def __init__(self, workdir: pathlib.Path):
        self.enabled = jax.process_index() == 0
        if self.enabled:
            self._jsonl = open(workdir / "metrics.jsonl", "a", buffering=1)
            self._tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, split: str, values: dict) -> None:
        if not self.enabled:
            return
        values = {k: float(v) for k, v in values.items()}
        finite = {k: (v if math.isfinite(v) else None) for k, v in values.items()}  # JSON has no NaN or inf
        self._jsonl.write(json.dumps({"step": step, "split": split, **finite}, allow_nan=False) + "\n")
        for k, v in values.items():
            self._tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


def progress(start: int, total: int, enabled: bool = True):
    """A tqdm bar over steps ``start..total`` (silent off process 0 or when disabled)."""
    return tqdm(total=total, initial=start, disable=not enabled or jax.process_index() != 0,
                dynamic_ncols=True, unit="step")
