"""Where a run's numbers go: JSON lines, TensorBoard event files and a progress bar."""

from __future__ import annotations

import json
import math
import pathlib
import time

import jax
from tensorboardX import SummaryWriter
from tqdm.auto import tqdm

from data.atomic import write_bytes


class MetricWriter:
    """Writes ``{"step": s, "split": name, **values}`` to ``metrics.jsonl`` and TensorBoard (process 0 only).

    Non-finite values are written as ``null``, so every line stays valid JSON.
    ``start`` is the step this run resumes from (0: a fresh start): what an
    earlier run wrote after it (steps that run did but never checkpointed, so
    this one does them again) is dropped, from ``metrics.jsonl`` by an atomic
    rewrite and from TensorBoard by ``purge_step`` (TensorBoard hides earlier
    events of any later step), so every step keeps one row. ``redo_eval``:
    this run evaluates at ``start`` again (the final evaluation), so earlier
    evaluation rows of that step go too.
    """

    def __init__(self, workdir: pathlib.Path, *, start: int = 0, redo_eval: bool = False):
        self.enabled = jax.process_index() == 0
        if self.enabled:
            path = workdir / "metrics.jsonl"
            if path.exists():
                keep_rows(path, lambda r: r["step"] < start or (r["step"] == start and not
                                                                (redo_eval and r["split"] == "eval")))
            self._jsonl = open(path, "a", buffering=1)
            # tensorboardX names event files by the second and truncates a same-named file: the suffix keeps a
            # quick restart's file apart from its predecessor's, and after it in name order (TensorBoard's order)
            self._tb = SummaryWriter(str(workdir / "tensorboard"), purge_step=start + 1,
                                     filename_suffix=f".{time.time_ns()}")

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


def keep_rows(path: pathlib.Path, keep) -> None:
    """Rewrite the JSON-lines file ``path`` atomically with only the rows ``keep(row)`` accepts.

    Kept lines stay byte for byte; a line that is not JSON (torn by a kill mid-write) is dropped.
    """
    kept = []
    for line in path.read_bytes().splitlines(keepends=True):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if keep(row):
            kept.append(line if line.endswith(b"\n") else line + b"\n")
    write_bytes(path, b"".join(kept))


def progress(start: int, total: int, enabled: bool = True):
    """A tqdm bar over steps ``start..total`` (silent off process 0 or when disabled)."""
    return tqdm(total=total, initial=start, disable=not enabled or jax.process_index() != 0,
                dynamic_ncols=True, unit="step")
