"""``modzoo bench train``: train-step throughput and model FLOP utilization of the GPT presets.

MFU = model FLOPs per second / this machine's measured dense matmul rate
(1024 x 1024 f32, timed in the same run). Model FLOPs per token follow the
PaLM appendix: 6 N (N = non-embedding parameters) + 12 L d T for attention.
"""

from __future__ import annotations

import jax
from flax import nnx

import zoo
from zoo.benchmarks.timing import matmul_flops_per_s, median_seconds
from zoo.summary import param_count
from zoo.train.step import make_train_step


def flops_per_token(model) -> float:
    """6 N + 12 L d T: training FLOPs per token of a zoo GPT (PaLM, App. B)."""
    cfg = model.config
    embed = sum(x.size for x in jax.tree.leaves(nnx.state(model.embed, nnx.Param)))
    return 6 * (param_count(model) - embed) + 12 * cfg.depth * cfg.width * cfg.context


def step_time(name: str, optimizer: str, batch_size: int, repeats: int, **overrides) -> tuple[float, object]:
    """Median seconds of one jitted train step (forward, backward, optimizer update)."""
    import optim

    model = zoo.create(name, rngs=nnx.Rngs(0), **overrides)
    geometry = zoo.geometry(model)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    tx = optim.build(optimizer, 1e-3, geometry)
    opt_state = tx.init(params)
    tokens = model.config.example_batch(batch_size, jax.random.key(0))

    step = jax.jit(make_train_step(graphdef, tx), donate_argnums=(0, 1))
    state = [params, opt_state]

    def run():
        state[0], state[1], _ = step(state[0], state[1], tokens)
        return state[0]

    return median_seconds(run, repeats), model


def run(presets=("gpt-tiny", "gpt-mini", "gpt-shakespeare"), optimizers=("adamw", "normalized_adam", "scion"),
        batch_size: int = 16, repeats: int = 5) -> list[dict]:
    """Print and return tokens/s and MFU for each preset and optimizer."""
    peak = matmul_flops_per_s()
    device = jax.devices()[0].device_kind
    print(f"device: {device} x{jax.device_count()}; measured matmul rate {peak / 1e9:.1f} GFLOP/s (1024^2 f32)")
    print(f"{'preset':<17}{'optimizer':<17}{'params':>11}{'ms/step':>10}{'tokens/s':>12}{'MFU':>8}")
    rows = []
    for name in presets:
        for opt in optimizers:
            seconds, model = step_time(name, opt, batch_size, repeats)
            tokens = batch_size * model.config.context
            mfu = flops_per_token(model) * tokens / seconds / peak
            row = {"preset": name, "optimizer": opt, "params": param_count(model), "ms_per_step": 1e3 * seconds,
                   "tokens_per_s": tokens / seconds, "mfu": mfu}
            rows.append(row)
            print(f"{name:<17}{opt:<17}{row['params']:>11,}{row['ms_per_step']:>10.1f}{row['tokens_per_s']:>12,.0f}"
                  f"{mfu:>8.1%}")
    return rows
