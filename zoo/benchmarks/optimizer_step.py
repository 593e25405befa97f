"""Benchmarks of `optim` on this machine: Newton–Schulz throughput and optimizer-step cost.

``run()`` prints, from one process (so every figure shares the machine's
state):

* plain matmul GFLOP/s at 1024², measured in the same run;
* Newton–Schulz GFLOP/s on 1024² and 768×3072 (flops 2m²n + 2m³ + 2m²n per
  step, m the short side) for Muon's quintic (5 steps, the setting optax
  uses), the default preset and six_step, and the time of optax's own
  ``optax.contrib._muon.orthogonalize_via_newton_schulz`` at the same 5 steps;
* the time of one optimizer step (update + apply, jitted) of Scion,
  normalized Adam and Muon on the ``preset`` GPT, divided by optax.adamw's;
* the bytes of every optimizer's state on the ``preset`` GPT with its
  momentum in float32 and in bfloat16 (``mu_dtype``; Scion's bfloat16 row is
  its memory-light mode), from shapes alone (``jax.eval_shape``).

Every time is the median of ``repeats`` runs after a jit warm-up.
``modzoo bench optim`` calls it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from optax.contrib import _muon as optax_muon

import optim
import zoo
from optim.newton_schulz import PRESETS
from zoo.benchmarks.timing import matmul_flops_per_s, median_seconds

NS_SHAPES = ((1024, 1024), (768, 3072))
OPTIMIZERS = ("scion", "normalized_adam", "muon")


def ns_flops(shape: tuple[int, int], steps: int) -> float:
    """Flops of ``steps`` Newton–Schulz steps on one matrix of ``shape``."""
    m, n = sorted(shape)
    return steps * (4 * m * m * n + 2 * m**3)


def newton_schulz_figures(repeats: int = 5) -> dict:
    """Matmul and Newton–Schulz GFLOP/s and optax's helper's time, per shape."""
    key = jax.random.key(0)
    out = {"matmul_gflops": matmul_flops_per_s(1024, repeats) / 1e9, "shapes": {}}
    muon = jnp.asarray(PRESETS["muon"].coeffs[0])
    for shape in NS_SHAPES:
        x = jax.random.normal(key, shape, jnp.float32)
        row = {}
        for preset in ("muon", optim.DEFAULT_PRESET, "six_step"):
            steps = len(PRESETS[preset].coeffs)
            f = jax.jit(lambda x, p=preset: optim.orthogonalize(x, coeffs=p))
            seconds = median_seconds(lambda: f(x), repeats)
            row[preset] = {"steps": steps, "seconds": seconds, "gflops": ns_flops(shape, steps) / seconds / 1e9}
        theirs = jax.jit(lambda x: optax_muon.orthogonalize_via_newton_schulz(x, muon, 5))
        row["optax_muon_seconds"] = median_seconds(lambda: theirs(x), repeats)
        out["shapes"][shape] = row
    return out


def step_figures(preset: str = "gpt-small", repeats: int = 5, **overrides) -> dict:
    """Seconds per jitted optimizer step (update + apply) on model ``preset``, and the ratio to optax.adamw."""
    model = zoo.create(preset, rngs=nnx.Rngs(0), **overrides)
    geometry = zoo.geometry(model)
    params = nnx.state(model, nnx.Param)
    grads = jax.tree.map(lambda p: 1e-3 * p, params)
    seconds = {}
    for name in ("adamw",) + OPTIMIZERS:
        tx = optax.adamw(1e-3) if name == "adamw" else optim.build(name, 1e-2, geometry)
        state = tx.init(params)

        @jax.jit
        def step(p, s, g, tx=tx):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        seconds[name] = median_seconds(lambda: step(params, state, grads), repeats)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    return {"preset": preset, "params": n_params, "seconds": seconds,
            "ratio_to_adamw": {k: v / seconds["adamw"] for k, v in seconds.items() if k != "adamw"}}


def tree_bytes(tree) -> int:
    """Bytes of every array leaf of ``tree`` (arrays or ``jax.ShapeDtypeStruct``s)."""
    return sum(x.size * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def memory_figures(preset: str = "gpt-small", mu_dtypes=("float32", "bfloat16"), **overrides) -> dict:
    """Bytes of the parameters and of each optimizer's state per momentum dtype on model ``preset``.

    Shapes only: the model and the states are traced by ``nnx.eval_shape`` and
    ``jax.eval_shape``, nothing is allocated, so gpt-small costs no memory.
    """
    model = nnx.eval_shape(lambda: zoo.create(preset, rngs=nnx.Rngs(0), **overrides))
    geometry = zoo.geometry(model)
    params = nnx.state(model, nnx.Param)
    state = {(name, mu_dtype): tree_bytes(jax.eval_shape(optim.build(name, 1e-2, geometry, mu_dtype=mu_dtype).init,
                                                         params))
             for name in optim.OPTIMIZERS for mu_dtype in mu_dtypes}
    return {"preset": preset, "params": tree_bytes(params), "state": state}


def print_memory(memory: dict) -> None:
    """The table of :func:`memory_figures`: MB of state and its ratio to the parameters' bytes."""
    print(f"optimizer state on {memory['preset']} (parameters {memory['params'] / 1e6:.1f} MB):")
    print(f"  {'optimizer':<17}{'mu_dtype':<10}{'state MB':>10}{'÷ params':>10}")
    for (name, mu_dtype), size in memory["state"].items():
        print(f"  {name:<17}{mu_dtype:<10}{size / 1e6:>10.1f}{size / memory['params']:>10.2f}")


def run(preset: str = "gpt-small", *, repeats: int = 5, **overrides) -> dict:
    """Measure and print every figure (module docstring); returns them as a dict."""
    print(f"optim benchmark on {jax.devices()[0].device_kind} ({jax.device_count()} device(s)), median of {repeats}")
    ns = newton_schulz_figures(repeats)
    print(f"plain matmul 1024x1024 f32: {ns['matmul_gflops']:.1f} GFLOP/s")
    for shape, row in ns["shapes"].items():
        for preset_name in ("muon", optim.DEFAULT_PRESET, "six_step"):
            r = row[preset_name]
            print(f"Newton–Schulz {shape[0]}x{shape[1]} {preset_name} ({r['steps']} steps): "
                  f"{r['seconds'] * 1e3:.1f} ms, {r['gflops']:.1f} GFLOP/s "
                  f"({r['gflops'] / ns['matmul_gflops']:.2f}x matmul)")
        print(f"  optax orthogonalize_via_newton_schulz (5 steps): {row['optax_muon_seconds'] * 1e3:.1f} ms "
              f"(ours/optax at 5 steps: {row['muon']['seconds'] / row['optax_muon_seconds']:.2f})")
    steps = step_figures(preset, repeats, **overrides)
    print(f"optimizer step on {preset} ({steps['params'] / 1e6:.1f}M params): "
          f"optax.adamw {steps['seconds']['adamw'] * 1e3:.1f} ms")
    for name in OPTIMIZERS:
        print(f"  {name}: {steps['seconds'][name] * 1e3:.1f} ms = {steps['ratio_to_adamw'][name]:.2f}x adamw")
    memory = memory_figures(preset, **overrides)
    print_memory(memory)
    return {"newton_schulz": ns, "step": steps, "memory": memory}
