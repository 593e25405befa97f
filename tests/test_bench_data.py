"""``modzoo bench data``: the pipeline rate is items delivered over the median time, measured on real batches."""

import pytest

import data
from zoo.benchmarks import input_pipeline


def test_delivery_rate_counts_items_over_the_median_time(monkeypatch):
    dataset = data.text_dataset("tinyshakespeare", "train", 16)
    calls = []
    monkeypatch.setattr(input_pipeline, "median_seconds", lambda fn, repeats: calls.append(fn()) or 0.5)
    rate = input_pipeline.delivery_rate(dataset, 4, 4 * 17, steps=3, repeats=2)
    assert rate == pytest.approx(3 * 4 * 17 / 0.5)
    (batches,) = calls
    assert len(batches) == 3 and all(b["tokens"].shape == (4, 17) for b in batches)
