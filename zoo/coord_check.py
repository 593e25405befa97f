"""The coord check (Yang et al., muP): activation sizes per layer across widths.

A parametrization that transfers keeps every layer's activation RMS (and,
after a few optimizer steps, the RMS of its change since initialization)
roughly flat as width grows. ``coord_check`` measures both; ``plot`` draws
them per layer against width (log-log), one panel per optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from zoo.modular import geometry
from zoo.registry import create, get_config
from zoo.train.step import make_train_step


def _rms(x: jax.Array) -> float:
    x = x.astype(jnp.float32)
    return float(jnp.sqrt(jnp.mean(x * x)))


def coord_check(name: str, widths: Sequence[int], *, steps: int = 0,
                make_optimizer: Callable[[nnx.State], optax.GradientTransformation] | None = None,
                batch_size: int = 8, batch: dict | None = None, seed: int = 0,
                **overrides) -> dict[int, dict[str, dict[str, float]]]:
    """Activation RMS per layer for model ``name`` at each width.

    Returns ``{width: {"rms": {layer: rms}, "delta": {layer: rms of change}}}``.
    With ``steps > 0``, ``make_optimizer(geometry)`` builds an optax
    transformation that trains each model ``steps`` times on ``batch`` (the
    same batch every step, default the config's ``example_batch``) before
    measuring; ``delta`` is then the change of each layer's output since
    initialization on that batch. Overrides (e.g. ``depth=2``) pass to
    :func:`zoo.create`.
    """
    if steps and make_optimizer is None:
        raise ValueError("coord_check with steps > 0 needs make_optimizer(geometry) -> optax transformation")
    results = {}
    for width in widths:
        model = create(name, rngs=nnx.Rngs(seed), width=width, **overrides)
        data = batch if batch is not None else get_config(name, width=width, **overrides).example_batch(
            batch_size, jax.random.key(seed + 1))
        x = model.inputs(data)
        acts = nnx.jit(lambda m, x: m.activations(x))
        before = acts(model, x)
        if steps:
            tx = make_optimizer(geometry(model))
            graphdef, state = nnx.split(model)
            params = nnx.to_pure_dict(state)
            opt_state = tx.init(params)
            train_step = jax.jit(make_train_step(graphdef, tx))
            for _ in range(steps):
                params, opt_state, _ = train_step(params, opt_state, data)
            nnx.replace_by_pure_dict(state, params)
            model = nnx.merge(graphdef, state)
        after = acts(model, x)
        results[width] = {"rms": {k: _rms(v) for k, v in after.items()},
                          "delta": {k: _rms(after[k] - before[k]) for k, v in after.items()}}
    return results


def spread(results: dict, kind: str = "rms") -> dict[str, float]:
    """Per layer, the largest over the smallest value across widths (1 = perfectly flat)."""
    layers = next(iter(results.values()))[kind]
    out = {}
    for layer in layers:
        vals = [results[w][kind][layer] for w in results]
        out[layer] = max(vals) / max(min(vals), 1e-30)
    return out


def plot(panels: dict[str, dict], path: str, *, kind: str = "rms") -> str:
    """Draw ``{title: coord_check results}`` as one log-log panel each; save a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, results) in zip(axes[0], panels.items()):
        widths = sorted(results)
        for layer in results[widths[0]][kind]:
            ax.plot(widths, [results[w][kind][layer] for w in widths], marker="o", label=layer)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_ylabel(f"activation {kind}" if kind == "rms" else "RMS of change since init")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
