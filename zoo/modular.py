"""A model's modular-norm geometry read out of its parameters, and the modular norm of a tree.

``geometry(model)`` gives one :class:`optim.Geometry` per parameter in a tree
with the structure of ``nnx.state(model, nnx.Param)``; optimizers take it once
when they are built. ``modular_norm`` is max_k ||w_k|| / c_k (Large et al.
2024, §3, Prop. 3 unrolled into a max over atoms).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from optim.geometry import Geometry, pair

_FIELDS = ("role", "norm", "fan_in", "fan_out", "mass", "sensitivity", "multiplier", "axes")


def _record(path, param: nnx.Variable) -> Geometry:
    meta = param.get_metadata()
    missing = [f for f in _FIELDS if meta.get(f) is None]
    if missing:
        where = "/".join(map(str, path))
        raise ValueError(f"parameter {where} has no geometry ({', '.join(missing)} missing); build it from "
                         "zoo.nn atoms and create the model with zoo.create / zoo.build")
    return Geometry(**{f: meta[f] for f in _FIELDS})


def geometry(model: nnx.Module) -> nnx.State:
    """One Geometry per parameter, in the structure of ``nnx.state(model, nnx.Param)``."""
    state = nnx.state(model, nnx.Param)
    return jax.tree_util.tree_map_with_path(
        lambda p, v: _record(p, v), state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def _atom_norms(geometry_tree, tree) -> list[tuple[Geometry, jax.Array]]:
    """Each parameter's geometry with the largest norm among its stacked atoms."""
    arrays, geos, _ = pair(tree, geometry_tree, "arrays")
    return [(g, jnp.max(g.atom_norm.value(a))) for g, a in zip(geos, arrays)]


def _max_ratio(values: list[tuple[Geometry, jax.Array]]) -> jax.Array:
    return jnp.max(jnp.stack([value / g.multiplier for g, value in values if g.multiplier > 0]))


def modular_norm(geometry_tree, tree) -> jax.Array:
    """Modular norm max_k ||w_k|| / c_k of weights or an update (atoms with c_k = 0 are skipped)."""
    return _max_ratio(_atom_norms(geometry_tree, tree))


def norm_report(geometry_tree, params, previous) -> dict[str, jax.Array]:
    """Modular-norm diagnostics of a training step (jit-able).

    ``weights`` and ``update`` are the modular norms max_k ||w_k|| / c_k of
    ``params`` and of ``params - previous`` (the last update; Large et al. 2024,
    Def. 4 unrolled); ``weights_<role>`` and ``update_<role>`` the largest atom
    norm ||w_k|| among the atoms of each role.
    """
    update = jax.tree.map(lambda a, b: a - b, params, previous)
    out = {}
    for name, tree in (("weights", params), ("update", update)):
        values = _atom_norms(geometry_tree, tree)
        out[name] = _max_ratio(values)
        by_role: dict[str, list] = {}
        for g, value in values:
            by_role.setdefault(g.role, []).append(value)
        out.update({f"{name}_{role}": jnp.max(jnp.stack(v)) for role, v in by_role.items()})
    return out
