"""Atom norms: one object per norm that owns every operation the project does in it.

Each atom of a model is measured in one norm (Large et al. 2024, "Scalable
Optimization in the Modular Norm", §3 and Table 1; Modula v2's atoms own their
norm in the same way). The norm object holds, for one atom:

* ``core_ndim``: how many trailing array dimensions make one atom (leading
  axes are stacked copies, each its own atom);
* ``value(w)``: the norm of each stacked atom;
* ``init(key, shape)``: random weights of norm exactly 1 (the zoo's
  initializers), so weights start where updates are measured;
* ``dual(g)``: the unit-norm steepest direction of a gradient (the dual map,
  Large et al. §3.2), which is also the norm ball's LMO up to sign (Pethick
  et al. 2025, Table 2);
* ``estimate(u, v)``: the norm by one warm-started power-iteration step
  where an exact value needs an SVD (Modula v1's normalize), with the
  iteration vector ``v`` kept by the caller, never below the norm's
  1/sqrt(min(d_in, d_out)) (:meth:`Spectral.estimate` derives the bound).

Exact values and dual maps divide by the largest entry before squaring
(:mod:`optim.magnitude`), so they are right for any finite input, 1e-30 or
1e30, where plain sums of squares overflow or underflow float32.

=========  =============================================  ===============================  ============================
norm       value for one atom (core shape)                initializer (norm 1)             dual map (LMO direction)
=========  =============================================  ===============================  ============================
spectral   sqrt(d_in/d_out)·σ_max(W)  (RMS→RMS)           semi-orthogonal·sqrt(d_out/d_in)  sqrt(d_out/d_in)·UVᵀ
embed      max over rows of RMS(row)                      rows of RMS 1                     each row to RMS 1 (ColNorm)
conv       k²·max over taps of spectral(tap)              each tap semi-orth.·sqrt(c_out/c_in)/k²  per tap, spectral dual / k²
rms        RMS of the vector                              ones                              g / RMS(g) (Bias LMO)
=========  =============================================  ===============================  ============================

Get one with :func:`get` (``get("spectral").value(w)``); :data:`NORMS` names them all.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from optim import lmo
from optim.magnitude import l2_norm, max_scaled
from optim.newton_schulz import DEFAULT_PRESET


def _spectral_value(w: jax.Array) -> jax.Array:
    """RMS→RMS operator norm of (..., d_in, d_out) matrices, by exact SVD of w / max|w| (times max|w|)."""
    d_in, d_out = w.shape[-2:]
    u, m = max_scaled(w.astype(jnp.float32), (-2, -1))
    sigma = jnp.linalg.svd(u, compute_uv=False)[..., 0] * m[..., 0, 0]
    return math.sqrt(d_in / d_out) * sigma


def _semi_orthogonal(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """A (d_in, d_out) matrix with orthonormal rows or columns (all singular values 1)."""
    return jax.nn.initializers.orthogonal(scale=1.0, column_axis=-1)(key, shape, dtype)


def _sigma_lower_bound(u: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A lower bound of σ_max of each (..., d_in, d_out) matrix in [σ_max/sqrt(min(d_in, d_out)), σ_max], from
    one power-iteration step on unit vectors v (..., d_out); returns it and the next v (derivation:
    :meth:`Spectral.estimate`). ``u`` should have entries of order 1 (the step squares them)."""
    w = jnp.einsum("...io,...o->...i", u, v)
    z = jnp.einsum("...io,...i->...o", u, w)
    w_norm = jnp.linalg.norm(w, axis=-1)
    z_norm = jnp.linalg.norm(z, axis=-1, keepdims=True)
    power = z_norm[..., 0] / jnp.where(w_norm > 0, w_norm, 1.0)
    rank_bound = l2_norm(u, (-2, -1)) / math.sqrt(min(u.shape[-2:]))
    return jnp.maximum(power, rank_bound), jnp.where(z_norm > 0, z / jnp.where(z_norm > 0, z_norm, 1.0), v)


class AtomNorm:
    """The operations of one atom norm (module docstring). Subclasses set
    ``name``, ``core_ndim`` and ``dual_map`` and implement ``value`` and ``init``."""

    name: str
    core_ndim: int
    powered: bool = False
    """True when :meth:`estimate` runs a power step and needs an iteration vector."""

    def _check(self, shape: tuple[int, ...], what: str) -> None:
        if len(shape) < self.core_ndim:
            raise ValueError(f"a {self.name!r} atom needs at least {self.core_ndim} dims for {what}, got {shape}")

    def value(self, w: jax.Array) -> jax.Array:
        """The norm of each stacked atom of ``w`` (shape ``w.shape[:-core_ndim]``), in float32."""
        raise NotImplementedError

    def init(self, key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        """Random weights of norm exactly 1 for one atom of ``shape`` (no stacked axes)."""
        raise NotImplementedError

    dual_map: lmo.PolarMap | Callable[[jax.Array], jax.Array]
    """The dual map in the form :func:`optim.lmo.apply_all` batches (a PolarMap where it orthogonalizes)."""

    def dual(self, g: jax.Array, *, ns_coeffs=DEFAULT_PRESET, ns_steps: int | None = None) -> jax.Array:
        """The unit-norm direction maximizing ⟨g, ·⟩, per stacked atom; zero maps to zero.
        ``ns_coeffs``/``ns_steps`` pick the Newton–Schulz preset where one is used."""
        return lmo.apply_all([self.dual_map], [g], coeffs=ns_coeffs, steps=ns_steps)[0]

    def first_vector(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """The starting iteration vector of :meth:`estimate` for an array of ``shape``."""
        raise ValueError(f"the {self.name!r} norm is exact and keeps no iteration vector")

    def estimate(self, u: jax.Array, v: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
        """(norm of each stacked atom, next iteration vector); exact norms return ``value(u)`` and ``v``."""
        return self.value(u), v

    def __repr__(self) -> str:
        return f"optim.norms.get({self.name!r})"


class Spectral(AtomNorm):
    """RMS→RMS operator norm of a (d_in, d_out) kernel: sqrt(d_in/d_out)·σ_max (Large et al. 2024, Table 1)."""

    name, core_ndim, powered, dual_map = "spectral", 2, True, lmo.SPECTRAL

    def value(self, w):
        self._check(w.shape, "its value")
        return _spectral_value(w)

    def init(self, key, shape, dtype=jnp.float32):
        d_in, d_out = _core(self, shape)
        return _semi_orthogonal(key, shape, dtype) * math.sqrt(d_out / d_in)

    def first_vector(self, key, shape):
        v = jax.random.normal(key, shape[:-2] + shape[-1:], jnp.float32)
        return v / jnp.linalg.norm(v, axis=-1, keepdims=True)

    def estimate(self, u, v):
        """sqrt(d_in/d_out)·L with L = max(P, ‖U‖_F/sqrt(r)), r = min(d_in, d_out), P = ‖UᵀUv‖/‖Uv‖ from
        one power step (Modula v1's normalize), so σ_max/sqrt(r) ≤ L ≤ σ_max for each matrix U.

        Both are lower bounds of σ_max: ‖UᵀUv‖ ≤ σ_max·‖Uv‖ gives P ≤ σ_max, and
        ‖U‖_F² = Σᵢ σᵢ² ≤ r·σ_max² gives ‖U‖_F/sqrt(r) ≤ σ_max. And since σ_max ≤ ‖U‖_F,
        L ≥ ‖U‖_F/sqrt(r) ≥ σ_max/sqrt(r). An update divided by this estimate therefore has at least its
        target norm and at most sqrt(min(d_in, d_out)) times it, whatever ``v`` is (without the
        Frobenius term a ``v`` nearly orthogonal to the top singular vector made it unbounded). The
        bound is attained: a rank-one U with ``v`` orthogonal to its row space has P = 0 and
        ‖U‖_F = σ_max. Warm-started over calls, P approaches σ_max (tests/test_optim_norms.py)."""
        sigma, v = _sigma_lower_bound(u, v)
        return math.sqrt(u.shape[-2] / u.shape[-1]) * sigma, v


class Conv(Spectral):
    """Conv kernel (k, k, c_in, c_out): k²·the largest per-tap RMS→RMS norm (Modula v1's Conv2D)."""

    name, core_ndim, powered = "conv", 4, True
    dual_map = lmo.PolarMap(lmo.as_matrices, lmo.spectral_conv_scale)  # each tap on its own, divided by k²

    def value(self, w):
        self._check(w.shape, "its value")
        kh, kw = w.shape[-4:-2]
        return kh * kw * _spectral_value(w).max(axis=(-2, -1))

    def init(self, key, shape, dtype=jnp.float32):
        kh, kw, c_in, c_out = _core(self, shape)
        keys = jax.random.split(key, kh * kw)
        taps = jax.vmap(lambda k: _semi_orthogonal(k, (c_in, c_out), dtype))(keys)
        return (taps * (math.sqrt(c_out / c_in) / (kh * kw))).reshape(shape)

    def estimate(self, u, v):
        """k²·sqrt(c_in/c_out)·(the largest per-tap bound of :meth:`Spectral.estimate`): each tap's bound is
        within [σ_tap/sqrt(r), σ_tap], r = min(c_in, c_out), so their maximum lies in [σ/sqrt(r), σ] for σ the
        largest σ_tap, and the same overshoot bound sqrt(min(c_in, c_out)) holds."""
        sigma, v = _sigma_lower_bound(u, v)
        kh, kw = u.shape[-4:-2]
        return kh * kw * math.sqrt(u.shape[-2] / u.shape[-1]) * sigma.max(axis=(-2, -1)), v


class Embed(AtomNorm):
    """Largest row RMS of a (vocab, d) table (Modula v2's embedding; Scion's ColNorm geometry)."""

    name, core_ndim, dual_map = "embed", 2, staticmethod(lmo.colnorm)

    def value(self, w):
        self._check(w.shape, "its value")
        return (l2_norm(w.astype(jnp.float32), -1) / math.sqrt(w.shape[-1])).max(axis=-1)

    def init(self, key, shape, dtype=jnp.float32):
        _core(self, shape)
        g = jax.random.normal(key, shape, jnp.float32)
        return (g / jnp.sqrt(jnp.mean(g * g, axis=-1, keepdims=True))).astype(dtype)


class RMS(AtomNorm):
    """RMS of a vector (gains and biases; Scion's Bias LMO geometry)."""

    name, core_ndim, dual_map = "rms", 1, staticmethod(lmo.bias)

    def value(self, w):
        self._check(w.shape, "its value")
        return l2_norm(w.astype(jnp.float32), -1) / math.sqrt(w.shape[-1])

    def init(self, key, shape, dtype=jnp.float32):
        _core(self, shape)
        return jnp.ones(shape, dtype)


def _core(norm: AtomNorm, shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) != norm.core_ndim:
        raise ValueError(f"{norm.name!r} init takes a {norm.core_ndim}-d shape, got {shape}")
    return tuple(shape)


_ALL = {n.name: n for n in (Spectral(), Embed(), Conv(), RMS())}
NORMS = tuple(_ALL)
"""The names of the atom norms."""


def get(name: str) -> AtomNorm:
    """The atom norm called ``name`` (one of :data:`NORMS`)."""
    try:
        return _ALL[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; expected one of {NORMS}") from None
