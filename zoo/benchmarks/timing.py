"""Timing helpers shared by the benchmarks: medians after a warm-up, and this machine's matmul rate."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp


def median_seconds(fn, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up (compile) call."""
    return interleaved_seconds({"fn": fn}, repeats)["fn"]


def interleaved_seconds(fns: Mapping[str, Callable], repeats: int = 5) -> dict[str, float]:
    """Median wall time of each ``fns[name]()``, measured in ``repeats`` rounds that call every function once.

    Each function is warmed up (compiled) first. Round r starts at the r-th
    function (a rotation), so no function always runs first or after the same
    neighbour. On a shared or throttled machine, whose speed drifts over
    seconds, the functions then see the same conditions and their ratios
    hold even when the absolute times do not.
    """
    names = list(fns)
    for name in names:
        jax.block_until_ready(fns[name]())
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t = time.perf_counter()
            jax.block_until_ready(fns[name]())
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_flops_per_s(n: int = 1024, repeats: int = 7) -> float:
    """Measured f32 n x n matmul rate on the default device, in FLOP/s."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    return 2 * n**3 / median_seconds(lambda: f(a), repeats)


def step_runner(step, params, opt_state, batch, compiler_options: dict | None = None) -> Callable:
    """A no-argument function that runs one training step and returns the new params: ``step(params, opt_state,
    batch) -> (params, opt_state, aux)`` jitted with the params and optimizer state donated (each call consumes
    the previous call's outputs, as training does) and compiled with XLA's ``compiler_options`` (none: the
    defaults)."""
    jitted = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, batch).compile(compiler_options)
    state = [params, opt_state]

    def once():
        state[0], state[1], _ = jitted(state[0], state[1], batch)
        return state[0]

    return once


BF16_DENSE_PEAK = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Vendor bf16 dense (no sparsity) peak FLOP/s by a substring of ``device_kind`` (SXM parts unless named)."""


def peak_flops_per_s() -> tuple[float, str]:
    """The rate MFU is taken against, and what it is: on a GPU listed in :data:`BF16_DENSE_PEAK` its bf16
    dense peak (the longest matching name wins), otherwise this machine's measured f32 matmul rate."""
    device = jax.devices()[0]
    if device.platform == "gpu":
        names = [name for name in BF16_DENSE_PEAK if name in device.device_kind]
        if names:
            name = max(names, key=len)
            return BF16_DENSE_PEAK[name], f"{name} bf16 dense peak"
    return matmul_flops_per_s(), "measured 1024x1024 f32 matmul"
