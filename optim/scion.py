"""Scion: momentum, then a per-parameter LMO of fixed radius (Pethick et al.
2025, "Training Deep Learning Models with Norm-Constrained LMOs", Alg. 1–2).

    d ← (1−α)·d + α·g                        (momentum as an average, α = ``momentum``)
    uSCG:  x ← x − γ·ρ·lmo(d)                (``constrained=False``)
    SCG:   x ← (1−γ)·x − γ·ρ·lmo(d)          (``constrained=True``; keeps ‖x‖ ≤ ρ)

γ is the learning rate (a float or an optax schedule), ρ the radius of the
parameter's role and lmo the LMO of its role (:mod:`optim.lmo`).

Memory: Scion stores one gradient-sized buffer, d, beside the weights (the
paper points out that only one set of weights and one gradient-sized buffer
need be kept, where Adam keeps two moments). ``mu_dtype=jnp.bfloat16`` is the
memory-light mode: d stored in bfloat16, half the f32 state's bytes, while the
average and the LMO are still computed in float32 (``modzoo bench optim``
prints the bytes).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optim import lmo as lmo_lib
from optim import geometry as geometry_lib
from optim.dtypes import float_dtype
from optim.newton_schulz import DEFAULT_PRESET, resolve

DEFAULT_LMO = {
    "embedding": "colnorm",
    "hidden": "spectral",
    "conv": "spectral_conv",
    "output": "sign",
    "gain": "bias",
    "bias": "bias",
}
"""Default LMO per role: the paper's one-hot-token stack ColNorm → Spectral → Sign."""

DEFAULT_RADIUS = {
    "embedding": 1.0,
    "hidden": 3.0,
    "conv": 3.0,
    "output": 10.0,
    "gain": 1.0,
    "bias": 1.0,
}
"""Default radius per role: the paper's Shakespeare GPT (embedding 1, hidden 3,
head 10); conv kernels share hidden's radius and gains/biases embedding's (both
are RMS-1 directions per row)."""


def _by_role(defaults: dict[str, Any], overrides: dict[str, Any] | None, what: str) -> dict[str, Any]:
    unknown = set(overrides or {}) - set(geometry_lib.ROLES)
    if unknown:
        raise ValueError(f"{what} given for unknown roles {sorted(unknown)}; roles are {geometry_lib.ROLES}")
    return {**defaults, **(overrides or {})}


class ScionState(NamedTuple):
    """Scion's only state: the averaged gradient d, shaped like the parameters (in ``mu_dtype``)."""

    momentum: optax.Updates


def scale_by_scion(
    geometry,
    *,
    momentum: float = 0.1,
    constrained: bool = False,
    radius: dict[str, float] | None = None,
    lmo: dict[str, str] | None = None,
    ns_coeffs=DEFAULT_PRESET,
    ns_steps: int | None = None,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Scion's direction before the learning rate: ρ·lmo(d), plus x when constrained.

    ``optax.scale_by_learning_rate(γ)`` after it gives −γρ·lmo(d) (uSCG) or
    −γ(x + ρ·lmo(d)) (SCG). ``radius`` and ``lmo`` override the per-role
    defaults :data:`DEFAULT_RADIUS` and :data:`DEFAULT_LMO`; ``ns_coeffs`` and
    ``ns_steps`` go to the Newton–Schulz-based LMOs, which run one
    Newton–Schulz call per matrix shape over all leaves
    (:func:`optim.lmo.apply_all`). d is stored in
    ``mu_dtype`` (None: the parameters' dtype) and averaged in float32.
    """
    mu_dtype = float_dtype(mu_dtype, "scion's mu_dtype")
    geos = geometry_lib.leaves(geometry)
    radii = _by_role(DEFAULT_RADIUS, radius, "radius")
    names = _by_role(DEFAULT_LMO, lmo, "lmo")
    resolve(ns_coeffs, ns_steps)
    maps = {role: lmo_lib.batchable(name) for role, name in names.items()}

    def init_fn(params):
        geometry_lib.pair(params, geos, "params")
        return ScionState(jax.tree.map(lambda p: jnp.zeros_like(p, dtype=mu_dtype), params))

    def update_fn(updates, state, params=None):
        grads, _, treedef = geometry_lib.pair(updates, geos)
        stored = jax.tree.leaves(state.momentum)
        avg = []
        for g, d in zip(grads, stored):
            d = d.astype(jnp.float32)
            avg.append(d + momentum * (g.astype(jnp.float32) - d))
        directions = lmo_lib.apply_all([maps[geo.role] for geo in geos], avg, coeffs=ns_coeffs, steps=ns_steps)
        out = [radii[geo.role] * direction for direction, geo in zip(directions, geos)]
        if constrained:
            if params is None:
                raise ValueError("scion(constrained=True) needs the parameters: call tx.update(grads, state, params)")
            out = [u + p.astype(u.dtype) for u, p in zip(out, jax.tree.leaves(params))]
        out = [u.astype(g.dtype) for u, g in zip(out, grads)]
        new_momentum = jax.tree.unflatten(jax.tree.structure(state.momentum),
                                          [a.astype(d.dtype) for a, d in zip(avg, stored)])
        return jax.tree.unflatten(treedef, out), ScionState(new_momentum)

    return optax.GradientTransformation(init_fn, update_fn)


def scion(
    learning_rate: optax.ScalarOrSchedule,
    geometry,
    *,
    momentum: float = 0.1,
    constrained: bool = False,
    radius: dict[str, float] | None = None,
    lmo: dict[str, str] | None = None,
    ns_coeffs=DEFAULT_PRESET,
    ns_steps: int | None = None,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Scion (uSCG, or SCG when ``constrained``) with step size ``learning_rate``.

    Args:
      learning_rate: γ, a float or an optax schedule of the step count.
      geometry: a tree of :class:`optim.geometry.Geometry` whose leaves pair,
        in flattened order, with the parameter leaves (``zoo.geometry(model)``).
      momentum: α in d ← (1−α)d + αg (1 means no momentum).
      constrained: SCG x ← (1−γ)x − γρ·lmo(d) instead of uSCG.
      radius: per-role radius ρ overriding :data:`DEFAULT_RADIUS`.
      lmo: per-role LMO name overriding :data:`DEFAULT_LMO`.
      ns_coeffs, ns_steps: Newton–Schulz preset for the spectral LMOs.
      mu_dtype: dtype d is stored in (None: the parameters'); ``jnp.bfloat16``
        is the memory-light mode of the module docstring.
    """
    return optax.chain(
        scale_by_scion(
            geometry,
            momentum=momentum,
            constrained=constrained,
            radius=radius,
            lmo=lmo,
            ns_coeffs=ns_coeffs,
            ns_steps=ns_steps,
            mu_dtype=mu_dtype,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


def _boundary(name: str, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """One atom on the unit sphere of the LMO ``name``: the LMO of a Gaussian,
    with an exact (QR) semi-orthogonal factor for the spectral LMOs."""
    orthogonal = jax.nn.initializers.orthogonal(column_axis=-1)
    if name == "spectral":
        return orthogonal(key, shape, jnp.float32) * lmo_lib.spectral_scale(shape)
    if name == "spectral_conv":
        kh, kw, c_in, c_out = shape
        flat = orthogonal(key, (kh * kw * c_in, c_out), jnp.float32)
        return flat.reshape(shape) * lmo_lib.spectral_conv_scale(shape)
    return lmo_lib.get(name)(jax.random.normal(key, shape, jnp.float32))


def scion_init(params, geometry, key: jax.Array, *, radius=None, lmo=None):
    """Scion's initialization: each weight matrix on the boundary of its LMO's
    ball of radius ρ (Pethick et al. 2025, §5: semi-orthogonal, normalized
    columns or signs, times ρ).

    Embedding, hidden, output and conv leaves are redrawn (one key per leaf,
    folded from ``key``; stacked copies drawn independently); gains and biases
    keep their values (ones already lie on the RMS sphere; biases start at
    zero). Returns a tree like ``params``.
    """
    geos = geometry_lib.leaves(geometry)
    radii = _by_role(DEFAULT_RADIUS, radius, "radius")
    names = _by_role(DEFAULT_LMO, lmo, "lmo")
    leaves, _, treedef = geometry_lib.pair(params, geos, "params")
    out = []
    for i, (w, geo) in enumerate(zip(leaves, geos)):
        if geo.role in ("gain", "bias"):
            out.append(w)
            continue
        stack, core = w.shape[: geo.stack_ndim], w.shape[geo.stack_ndim :]
        keys = jax.random.split(jax.random.fold_in(key, i), math.prod(stack))
        draw = jax.vmap(lambda k: _boundary(names[geo.role], k, core))(keys)
        out.append((radii[geo.role] * draw).reshape(w.shape).astype(w.dtype))
    return jax.tree.unflatten(treedef, out)
