"""ℓ2 norms and normalizations that neither overflow nor underflow in float32.

A sum of squares overflows float32 (and bfloat16, which has float32's exponent
range) once entries pass about 1.8e19, and underflows to zero below about
1e-19: a norm computed directly comes out inf or 0, and a normalization
divides by it. The standard remedy (Blue 1978, "A Portable Fortran Program to
Find the Euclidean Norm of a Vector", ACM TOMS 4(1); LAPACK's xNRM2) is to
divide by the largest magnitude first: every entry is then in [-1, 1] with one
of them ±1, so the sum of squares lies in [1, n] and the norm is that of the
scaled slice times the largest magnitude. Norms are homogeneous, so a
normalization can use the scaled slice alone.

Every function treats an all-zero slice as zero (no division by zero, no NaN).
Subnormal inputs (below 1.2e-38) read as zero on XLA:CPU, which flushes them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Axis = int | tuple[int, ...]


def max_scaled(x: jax.Array, axis: Axis) -> tuple[jax.Array, jax.Array]:
    """``(x / m, m)`` with ``m`` the largest magnitude of each slice over ``axis`` (kept as size-1 axes);
    an all-zero slice is divided by 1 and stays zero."""
    m = jnp.max(jnp.abs(x), axis=axis, keepdims=True)
    return x / jnp.where(m > 0, m, 1.0), m


def l2_norm(x: jax.Array, axis: Axis, keepdims: bool = False) -> jax.Array:
    """The ℓ2 norm of each slice of ``x`` over ``axis``, as ``m · ‖x / m‖`` (module docstring)."""
    u, m = max_scaled(x, axis)
    norm = m * jnp.sqrt(jnp.sum(u * u, axis=axis, keepdims=True))
    return norm if keepdims else jnp.squeeze(norm, axis)


def normalize(x: jax.Array, axis: Axis, size: float) -> jax.Array:
    """Each slice of ``x`` over ``axis`` scaled to ℓ2 norm ``size``, computed on ``x / m`` so no
    square overflows or underflows; all-zero slices stay zero."""
    u, _ = max_scaled(x, axis)
    norm = jnp.sqrt(jnp.sum(u * u, axis=axis, keepdims=True))
    return u * (size / jnp.where(norm > 0, norm, 1.0))
