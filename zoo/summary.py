"""Parameter counts and per-parameter tables, for the catalog and the train script."""

from __future__ import annotations

import math

import jax
from flax import nnx

from zoo.registry import build, get_config, list_models


def param_count(model: nnx.Module) -> int:
    """Number of scalars in the model's ``nnx.Param`` arrays (works on ``nnx.eval_shape`` models)."""
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def summary(model: nnx.Module) -> str:
    """One line per parameter: path, shape, role, multiplier c_k, count; then the total."""
    rows = []
    for path, p in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        meta = p.get_metadata()
        shape = tuple(p.shape)
        c = meta.get("multiplier")
        rows.append((".".join(map(str, path)), "x".join(map(str, shape)), str(meta.get("role")),
                     "-" if c is None else f"{c:.4f}", f"{math.prod(shape):,}"))
    header = ("parameter", "shape", "role", "c_k", "count")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    lines.append(f"total parameters: {param_count(model):,}")
    return "\n".join(lines)


def catalog(pattern: str | None = None) -> list[dict]:
    """Name, family, width, depth and parameter count of every registered preset (no allocation)."""
    out = []
    for name in list_models(pattern):
        cfg = get_config(name)
        model = nnx.eval_shape(lambda: build(cfg, rngs=nnx.Rngs(0)))
        out.append({"name": name, "family": cfg.family, "width": cfg.width, "depth": cfg.depth,
                    "params": param_count(model)})
    return out
