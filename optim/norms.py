"""Atom norms and the initializers that put each atom on its norm's unit sphere.

One definition per norm (Large et al. 2024, §3 and Table 1; Modula v2), shared
by the zoo's initializers and the optimizers' normalization, so that an atom's
initial weights and its updates are measured in the same norm.

=========  ===========================================  ==============================
norm       value for one atom (core shape)              initializer (norm 1)
=========  ===========================================  ==============================
spectral   sqrt(d_in/d_out) * sigma_max(W)  (RMS->RMS)  semi-orthogonal * sqrt(d_out/d_in)
embed      max over rows of RMS(row)                    rows of l2 norm sqrt(d) (RMS 1)
conv       k^2 * max over taps of spectral(tap)         each tap semi-orthogonal * sqrt(c_out/c_in)/k^2
rms        RMS of the vector                            ones
=========  ===========================================  ==============================

All functions take the full array, leading stacked axes included, and treat
each stacked slice as its own atom.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from optim.geometry import Geometry

_CORE_NDIM = {"spectral": 2, "embed": 2, "conv": 4, "rms": 1}


def core_ndim(norm: str) -> int:
    """Number of trailing dimensions that make up one atom of this norm."""
    try:
        return _CORE_NDIM[norm]
    except KeyError:
        raise ValueError(f"unknown norm {norm!r}; expected one of {tuple(_CORE_NDIM)}") from None


def _spectral(w: jax.Array) -> jax.Array:
    """RMS->RMS operator norm of (..., d_in, d_out) matrices, by exact SVD."""
    d_in, d_out = w.shape[-2:]
    sigma = jnp.linalg.svd(w.astype(jnp.float32), compute_uv=False)[..., 0]
    return math.sqrt(d_in / d_out) * sigma


def atom_norm(norm: str, w: jax.Array) -> jax.Array:
    """The atom norm of ``w``, one value per stacked slice (shape ``w.shape[:-core]``)."""
    core = core_ndim(norm)
    if w.ndim < core:
        raise ValueError(f"a {norm!r} atom needs at least {core} dims, got shape {w.shape}")
    w = w.astype(jnp.float32)
    if norm == "spectral":
        return _spectral(w)
    if norm == "embed":
        return jnp.sqrt(jnp.mean(w * w, axis=-1)).max(axis=-1)
    if norm == "conv":
        k = w.shape[-4] * w.shape[-3]
        return k * _spectral(w).max(axis=(-2, -1))
    return jnp.sqrt(jnp.mean(w * w, axis=-1))


def norm_of(geometry: Geometry, w: jax.Array) -> jax.Array:
    """``atom_norm`` for the norm a :class:`Geometry` names."""
    return atom_norm(geometry.norm, w)


def _semi_orthogonal(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """A (d_in, d_out) matrix with orthonormal rows or columns (all singular values 1)."""
    return jax.nn.initializers.orthogonal(scale=1.0, column_axis=-1)(key, shape, dtype)


def init(norm: str, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Random weights of atom norm exactly 1 in ``norm`` (one atom; no stacked axes).

    spectral: semi-orthogonal scaled by sqrt(d_out/d_in), so RMS->RMS norm 1;
    embed: Gaussian rows rescaled to RMS 1; conv: per-tap semi-orthogonal scaled
    by sqrt(c_out/c_in)/k^2; rms: ones.
    """
    if len(shape) != core_ndim(norm):
        raise ValueError(f"{norm!r} init takes a {core_ndim(norm)}-d shape, got {shape}")
    if norm == "spectral":
        d_in, d_out = shape
        return _semi_orthogonal(key, shape, dtype) * math.sqrt(d_out / d_in)
    if norm == "embed":
        g = jax.random.normal(key, shape, jnp.float32)
        g = g / jnp.sqrt(jnp.mean(g * g, axis=-1, keepdims=True))
        return g.astype(dtype)
    if norm == "conv":
        kh, kw, c_in, c_out = shape
        keys = jax.random.split(key, kh * kw)
        taps = jax.vmap(lambda k: _semi_orthogonal(k, (c_in, c_out), dtype))(keys)
        scale = math.sqrt(c_out / c_in) / (kh * kw)
        return (taps * scale).reshape(shape)
    return jnp.ones(shape, dtype)
