"""``modzoo bench loop``: the logged rate it compares is the median of a run's train rows, the first left out."""

import json

import pytest

from zoo.benchmarks.train_loop import logged_rate


def test_logged_rate_skips_the_compile_interval_and_other_splits(tmp_path):
    rows = [{"step": 1, "split": "train", "loss": 5.0, "tokens_per_s": 10.0},  # compilation: left out
            {"step": 2, "split": "norms", "weights": 7.0},
            {"step": 50, "split": "train", "loss": 3.0, "tokens_per_s": 1000.0},
            {"step": 100, "split": "train", "loss": 2.5, "tokens_per_s": 1200.0},
            {"step": 100, "split": "eval", "loss": 2.6},
            {"step": 150, "split": "train", "loss": 2.4, "tokens_per_s": 1100.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert logged_rate(tmp_path) == pytest.approx(1100.0)
