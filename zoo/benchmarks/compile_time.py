"""``modzoo bench compile``: compile time and step time against depth, the blocks scanned or unrolled.

For the main job's GPT (``configs/gpt_shakespeare.py``: its width, context,
batch and optimizer) at each depth, the train step is lowered and compiled
with ``model.layer_loop="scan"`` (one block body, ``nnx.scan``: compile time
flat in depth) and ``"unroll"`` (a Python loop: compile time grows with
depth, the step is faster on XLA:CPU), and then timed (interleaved rounds).
``layer_loop="auto"`` unrolls up to :data:`zoo.models.base.UNROLL_MAX_DEPTH`
blocks: this benchmark is the measurement behind that default.
"""

from __future__ import annotations

import dataclasses
import time

import jax
from flax import nnx

import zoo
from configs import gpt_shakespeare
from zoo.benchmarks.timing import interleaved_seconds
from zoo.benchmarks.train_step import optimizer_for
from zoo.train.loop import model_config
from zoo.train.step import make_train_step

LOOPS = ("scan", "unroll")


def compiled_step(depth: int, layer_loop: str, optimizer: str = "normalized_adam"):
    """(seconds to lower and compile, a no-argument function running one step) for the main job's GPT at
    ``depth`` with ``layer_loop``."""
    config = gpt_shakespeare.get_config(f"optim={optimizer}")
    cfg = dataclasses.replace(model_config(config), depth=depth, layer_loop=layer_loop)
    model = zoo.build(cfg, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    tx = optimizer_for(optimizer, zoo.geometry(model))
    params = nnx.to_pure_dict(state)
    batch = cfg.example_batch(int(config.train.batch_size), jax.random.key(0))
    opt_state = tx.init(params)
    start = time.perf_counter()
    step = jax.jit(make_train_step(graphdef, tx), donate_argnums=(0, 1)).lower(params, opt_state, batch).compile()
    seconds = time.perf_counter() - start
    carry = [params, opt_state]

    def once():
        carry[0], carry[1], _ = step(carry[0], carry[1], batch)
        return carry[0]

    return seconds, once


def run(depths=(2, 4, 8, 16, 32), repeats: int = 5) -> list[dict]:
    """Print and return one row per depth: compile seconds and ms/step, scanned and unrolled."""
    print("main job GPT (configs/gpt_shakespeare.py, normalized Adam) on "
          f"{jax.devices()[0].device_kind}: lower + compile of the train step, and its median ms/step "
          f"({repeats} interleaved rounds)")
    print(f"{'depth':>5}{'compile scan':>14}{'compile unroll':>16}{'ms/step scan':>14}{'ms/step unroll':>16}"
          f"{'unroll speed-up':>17}")
    rows = []
    for depth in depths:
        compile_s, runners = {}, {}
        for loop in LOOPS:
            compile_s[loop], runners[loop] = compiled_step(depth, loop)
        step_s = interleaved_seconds(runners, repeats)
        row = {"depth": depth, **{f"compile_{k}_s": v for k, v in compile_s.items()},
               **{f"step_{k}_s": v for k, v in step_s.items()}}
        rows.append(row)
        print(f"{depth:>5}{compile_s['scan']:>13.1f}s{compile_s['unroll']:>15.1f}s{1e3 * step_s['scan']:>14.1f}"
              f"{1e3 * step_s['unroll']:>16.1f}{step_s['scan'] / step_s['unroll']:>16.2f}x")
    return rows
