"""``modzoo bench loop``: does the training loop keep up with its train step?

Runs the main job's config (``configs/gpt_shakespeare.py``, shortened to
``steps`` steps, no checkpoints and no sample) through :func:`zoo.train.train`
and compares the tokens/s it logs (the median over its log rows, the first,
which includes compilation, left out) with the bare jitted step's rate on one
fixed batch at the same configuration, measured in the same run, once before
and once after the loop (their mean is the reference: on a machine whose
speed drifts, the two show by how much). A ratio near 1 means the input
pipeline, host-to-device copies, logging and checks cost nothing the step
does not hide.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import tempfile

from configs import gpt_shakespeare
from zoo.benchmarks.input_pipeline import consumption_rate
from zoo.train.loop import train


def logged_rate(workdir: pathlib.Path, unit: str = "tokens") -> float:
    """Median of the ``<unit>_per_s`` values of a run's train rows, its first logged interval left out."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    rates = [r[f"{unit}_per_s"] for r in rows if r["split"] == "train" and f"{unit}_per_s" in r]
    return statistics.median(rates[1:])


def run(steps: int = 600, repeats: int = 20) -> dict:
    """Print and return the loop's logged tokens/s, the bare step's, and their ratio."""
    config = gpt_shakespeare.get_config()
    config.train.update({"steps": steps, "checkpoint_every": 0, "sample_tokens": 0})
    before = consumption_rate(config, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        train(config, tmp, quiet=True)
        loop = logged_rate(pathlib.Path(tmp))
    after = consumption_rate(config, repeats)
    step = (before + after) / 2
    print(f"main job config (batch {config.train.batch_size}, {steps} steps, log every {config.train.log_every}, "
          f"eval every {config.train.eval_every}, norms every {config.train.norm_every})")
    print(f"{'modzoo train, logged tokens/s (median)':<44}{loop:>12,.0f}")
    print(f"{'bare train step tokens/s (median), before':<44}{before:>12,.0f}")
    print(f"{'bare train step tokens/s (median), after':<44}{after:>12,.0f}")
    print(f"{'loop / mean of the two':<44}{loop / step:>12.3f}")
    return {"loop_tokens_per_s": loop, "step_tokens_per_s": step, "step_before": before, "step_after": after,
            "ratio": loop / step}
