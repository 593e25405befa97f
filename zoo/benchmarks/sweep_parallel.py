"""``modzoo bench parallel``: one process on every core, or one process pinned to each core?

For the GPTs of the width sweep (configs/sweeps/gpt_width.py: depth 2,
context 64, batch 16, normalized Adam) it times the train step of one
unpinned process, then of ``cores`` processes at once, each pinned to its own
core, and prints the throughput ratio (pinned processes together / one
process). Above 1, a sweep should run that many pinned workers
(``modzoo sweep --parallel``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

WIDTHS = (32, 64, 128, 256)


def _child(width: int, seconds: float) -> None:
    """Time the train step of one width for about ``seconds``; print ms/step as JSON."""
    import time

    import jax

    from configs.sweeps import gpt_width
    from zoo.train.loop import Run

    config = gpt_width.get_config()
    config.model.width = width
    config.optim.name, config.optim.learning_rate = "normalized_adam", 0.1
    config.mesh.data = 1
    run = Run(config)
    batch = run.global_batch({k: jax.device_get(v) for k, v in
                              run.model_cfg.example_batch(config.train.batch_size, jax.random.key(0)).items()})
    params, state, _ = run.step_fn(run.params, run.opt_state, batch)
    jax.block_until_ready(params)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        params, state, metrics = run.step_fn(params, state, batch)
        n += 1
        if n % 5 == 0:
            jax.block_until_ready(metrics)
    jax.block_until_ready(params)
    print(json.dumps({"ms_per_step": 1e3 * (time.perf_counter() - t0) / n}))


def _spawn(width: int, seconds: float, core: int | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    return subprocess.Popen([sys.executable, "-m", "zoo.benchmarks.sweep_parallel", str(width), str(seconds)],
                            stdout=subprocess.PIPE, text=True, env=env, preexec_fn=pin)


def _ms(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"benchmark process failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def run(seconds: float = 10.0) -> list[dict]:
    """Measure and print the ratio for each width (module docstring)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"train step of the gpt_width sweep's GPTs, about {seconds:.0f} s per measurement, {cores} cores")
    print(f"{'width':>6}{'1 process ms/step':>20}{f'{cores} pinned ms/step':>20}{'throughput ratio':>18}")
    rows = []
    for width in WIDTHS:
        one = _ms(_spawn(width, seconds, None))
        pinned = [_ms(p) for p in [_spawn(width, seconds, c) for c in range(cores)]]
        ratio = sum(one / ms for ms in pinned)
        rows.append({"width": width, "one_process_ms": one, "pinned_ms": pinned, "ratio": ratio})
        print(f"{width:>6}{one:>20.1f}{sum(pinned) / len(pinned):>20.1f}{ratio:>18.2f}")
    return rows


if __name__ == "__main__":
    _child(int(sys.argv[1]), float(sys.argv[2]))
