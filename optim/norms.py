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
  iteration vector ``v`` kept by the caller.

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

import jax
import jax.numpy as jnp

from optim import lmo
from optim.newton_schulz import DEFAULT_PRESET


def _spectral_value(w: jax.Array) -> jax.Array:
    """RMS→RMS operator norm of (..., d_in, d_out) matrices, by exact SVD."""
    d_in, d_out = w.shape[-2:]
    sigma = jnp.linalg.svd(w.astype(jnp.float32), compute_uv=False)[..., 0]
    return math.sqrt(d_in / d_out) * sigma


def _semi_orthogonal(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """A (d_in, d_out) matrix with orthonormal rows or columns (all singular values 1)."""
    return jax.nn.initializers.orthogonal(scale=1.0, column_axis=-1)(key, shape, dtype)


def _power_step(u: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One power-iteration step on (..., d_in, d_out) matrices from unit vectors
    v (..., d_out): returns (σ_max estimate ‖UᵀUv‖/‖Uv‖ ≤ σ_max, next v)."""
    w = jnp.einsum("...io,...o->...i", u, v)
    z = jnp.einsum("...io,...i->...o", u, w)
    w_norm = jnp.linalg.norm(w, axis=-1)
    z_norm = jnp.linalg.norm(z, axis=-1, keepdims=True)
    sigma = z_norm[..., 0] / jnp.where(w_norm > 0, w_norm, 1.0)
    return sigma, jnp.where(z_norm > 0, z / jnp.where(z_norm > 0, z_norm, 1.0), v)


class AtomNorm:
    """The operations of one atom norm (module docstring). Subclasses set
    ``name`` and ``core_ndim`` and implement ``value``, ``init`` and ``dual``."""

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

    def dual(self, g: jax.Array, *, ns_coeffs=DEFAULT_PRESET, ns_steps: int | None = None) -> jax.Array:
        """The unit-norm direction maximizing ⟨g, ·⟩, per stacked atom; zero maps to zero.
        ``ns_coeffs``/``ns_steps`` pick the Newton–Schulz preset where one is used."""
        raise NotImplementedError

    def first_vector(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """The starting iteration vector of :meth:`estimate` for an array of ``shape``."""
        raise ValueError(f"the {self.name!r} norm is exact and keeps no iteration vector")

    def estimate(self, u: jax.Array, v: jax.Array | None) -> tuple[jax.Array, jax.Array | None]:
        """(norm of each stacked atom, next iteration vector); exact norms return ``value(u)`` and ``v``."""
        return self.value(u), v

    def _frobenius(self, u: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.sum(u * u, axis=tuple(range(u.ndim - self.core_ndim, u.ndim))))

    def __repr__(self) -> str:
        return f"optim.norms.get({self.name!r})"


class Spectral(AtomNorm):
    """RMS→RMS operator norm of a (d_in, d_out) kernel: sqrt(d_in/d_out)·σ_max (Large et al. 2024, Table 1)."""

    name, core_ndim, powered = "spectral", 2, True

    def value(self, w):
        self._check(w.shape, "its value")
        return _spectral_value(w)

    def init(self, key, shape, dtype=jnp.float32):
        d_in, d_out = _core(self, shape)
        return _semi_orthogonal(key, shape, dtype) * math.sqrt(d_out / d_in)

    def dual(self, g, *, ns_coeffs=DEFAULT_PRESET, ns_steps=None):
        return lmo.spectral(g, coeffs=ns_coeffs, steps=ns_steps)

    def first_vector(self, key, shape):
        v = jax.random.normal(key, shape[:-2] + shape[-1:], jnp.float32)
        return v / jnp.linalg.norm(v, axis=-1, keepdims=True)

    def estimate(self, u, v):
        """One power step; where it finds nothing (``v`` orthogonal to ``u``'s rows) the Frobenius
        bound stands in, which is never below the norm, so a normalized update never exceeds its target."""
        sigma, v = _power_step(u, v)
        scale = math.sqrt(u.shape[-2] / u.shape[-1])
        return self._bounded(scale * sigma, scale, u), v

    def _bounded(self, value, scale, u):
        return jnp.where(value > 0, value, scale * self._frobenius(u))


class Conv(Spectral):
    """Conv kernel (k, k, c_in, c_out): k²·the largest per-tap RMS→RMS norm (Modula v1's Conv2D)."""

    name, core_ndim, powered = "conv", 4, True

    def value(self, w):
        self._check(w.shape, "its value")
        kh, kw = w.shape[-4:-2]
        return kh * kw * _spectral_value(w).max(axis=(-2, -1))

    def init(self, key, shape, dtype=jnp.float32):
        kh, kw, c_in, c_out = _core(self, shape)
        keys = jax.random.split(key, kh * kw)
        taps = jax.vmap(lambda k: _semi_orthogonal(k, (c_in, c_out), dtype))(keys)
        return (taps * (math.sqrt(c_out / c_in) / (kh * kw))).reshape(shape)

    def dual(self, g, *, ns_coeffs=DEFAULT_PRESET, ns_steps=None):
        kh, kw = g.shape[-4:-2]
        return lmo.spectral(g, coeffs=ns_coeffs, steps=ns_steps) / jnp.asarray(kh * kw, g.dtype)

    def estimate(self, u, v):
        sigma, v = _power_step(u, v)
        kh, kw = u.shape[-4:-2]
        scale = kh * kw * math.sqrt(u.shape[-2] / u.shape[-1])
        return self._bounded(scale * sigma.max(axis=(-2, -1)), scale, u), v


class Embed(AtomNorm):
    """Largest row RMS of a (vocab, d) table (Modula v2's embedding; Scion's ColNorm geometry)."""

    name, core_ndim = "embed", 2

    def value(self, w):
        self._check(w.shape, "its value")
        w = w.astype(jnp.float32)
        return jnp.sqrt(jnp.mean(w * w, axis=-1)).max(axis=-1)

    def init(self, key, shape, dtype=jnp.float32):
        _core(self, shape)
        g = jax.random.normal(key, shape, jnp.float32)
        return (g / jnp.sqrt(jnp.mean(g * g, axis=-1, keepdims=True))).astype(dtype)

    def dual(self, g, *, ns_coeffs=DEFAULT_PRESET, ns_steps=None):
        return lmo.colnorm(g)


class RMS(AtomNorm):
    """RMS of a vector (gains and biases; Scion's Bias LMO geometry)."""

    name, core_ndim = "rms", 1

    def value(self, w):
        self._check(w.shape, "its value")
        w = w.astype(jnp.float32)
        return jnp.sqrt(jnp.mean(w * w, axis=-1))

    def init(self, key, shape, dtype=jnp.float32):
        _core(self, shape)
        return jnp.ones(shape, dtype)

    def dual(self, g, *, ns_coeffs=DEFAULT_PRESET, ns_steps=None):
        return lmo.bias(g)


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
