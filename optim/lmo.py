"""Linear minimization oracles (Pethick et al. 2025, "Training Deep Learning
Models with Norm-Constrained LMOs", Table 2), in flax layouts.

Each LMO maps a gradient G to the unit-radius direction s that maximizes
⟨G, s⟩ over the unit ball of its norm (the minus sign of lmo(G) = −s is left
to the optimizer). Every map is scale-invariant (lmo(c·G) = lmo(G) for c > 0),
sends a zero gradient to zero, and treats leading axes as stacked copies.

Layouts are flax's: a dense kernel is (..., d_in, d_out), the transpose of
the paper's (d_out, d_in); an embedding table (vocab, d) is the kernel of the
one-hot input layer, so its d_in is vocab; a conv kernel is
(..., k, k, c_in, c_out).

=============  =====================================================  =================
name           direction (radius 1)                                   default role
=============  =====================================================  =================
spectral       sqrt(d_out/d_in)·UVᵀ                                   hidden
spectral_conv  UVᵀ of the kernel as (k·k·c_in, c_out) ·sqrt(c_out/c_in)/k²   conv
colnorm        each d_in slice (flax row) to ℓ2 norm sqrt(d_out)      embedding
rownorm        each d_out slice (flax column) to ℓ2 norm 1/sqrt(d_in)  (alternative head)
sign           sign(G)/d_in                                           output
bias           G / RMS(G) over the last axis                          gain, bias
=============  =====================================================  =================
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

from optim.newton_schulz import DEFAULT_PRESET, orthogonalize, resolve


def _need_ndim(name: str, g: jax.Array, core: int, layout: str) -> None:
    if g.ndim < core:
        raise ValueError(
            f"the {name!r} LMO needs an array of layout {layout}; got shape {g.shape}"
            + (" (give vectors the 'bias' LMO)" if core > 1 else "")
        )


def _unit(g: jax.Array, norm: jax.Array) -> jax.Array:
    """g / norm, with zero where the norm is zero (never NaN)."""
    return g / jnp.where(norm > 0, norm, 1.0)


def spectral_scale(shape: tuple[int, ...]) -> float:
    """sqrt(d_out/d_in) for a (..., d_in, d_out) kernel: the spectral LMO's factor."""
    d_in, d_out = shape[-2:]
    return math.sqrt(d_out / d_in)


def spectral_conv_scale(shape: tuple[int, ...]) -> float:
    """sqrt(c_out/c_in)/(kh·kw) for a (..., kh, kw, c_in, c_out) kernel."""
    kh, kw, c_in, c_out = shape[-4:]
    return math.sqrt(c_out / c_in) / (kh * kw)


def spectral(g: jax.Array, *, coeffs=DEFAULT_PRESET, steps=None, dtype=jnp.float32) -> jax.Array:
    """Spectral (RMS→RMS) LMO: sqrt(d_out/d_in)·UVᵀ, by Newton–Schulz.

    ``coeffs``, ``steps``, ``dtype`` go to :func:`optim.orthogonalize`.
    """
    _need_ndim("spectral", g, 2, "(..., d_in, d_out)")
    return orthogonalize(g, coeffs=coeffs, steps=steps, dtype=dtype) * jnp.asarray(spectral_scale(g.shape), g.dtype)


def spectral_conv(g: jax.Array, *, coeffs=DEFAULT_PRESET, steps=None, dtype=jnp.float32) -> jax.Array:
    """Spectral LMO for convolutions: UVᵀ of the kernel flattened to
    (k·k·c_in, c_out), times sqrt(c_out/c_in)/k²."""
    _need_ndim("spectral_conv", g, 4, "(..., k, k, c_in, c_out)")
    *stack, kh, kw, c_in, c_out = g.shape
    flat = g.reshape(*stack, kh * kw * c_in, c_out)
    u = orthogonalize(flat, coeffs=coeffs, steps=steps, dtype=dtype).reshape(g.shape)
    return u * jnp.asarray(spectral_conv_scale(g.shape), g.dtype)


def colnorm(g: jax.Array) -> jax.Array:
    """ColNorm (ℓ1→RMS) LMO: each input's weights (a flax row) scaled to ℓ2 norm sqrt(d_out)."""
    _need_ndim("colnorm", g, 2, "(..., d_in, d_out)")
    x = g.astype(jnp.float32)
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True) / math.sqrt(g.shape[-1])
    return _unit(x, norm).astype(g.dtype)


def rownorm(g: jax.Array) -> jax.Array:
    """RowNorm (RMS→ℓ∞) LMO: each output's weights (a flax column) scaled to ℓ2 norm 1/sqrt(d_in)."""
    _need_ndim("rownorm", g, 2, "(..., d_in, d_out)")
    x = g.astype(jnp.float32)
    norm = jnp.linalg.norm(x, axis=-2, keepdims=True) * math.sqrt(g.shape[-2])
    return _unit(x, norm).astype(g.dtype)


def sign(g: jax.Array) -> jax.Array:
    """Sign (RMS→ℓ∞ via ℓ1→ℓ∞) LMO: sign(G)/d_in."""
    _need_ndim("sign", g, 2, "(..., d_in, d_out)")
    return (jnp.sign(g) / g.shape[-2]).astype(g.dtype)


def bias(g: jax.Array) -> jax.Array:
    """Bias (RMS) LMO for biases and gains: G / RMS(G) over the last axis."""
    _need_ndim("bias", g, 1, "(..., d)")
    x = g.astype(jnp.float32)
    return _unit(x, jnp.sqrt(jnp.mean(x * x, axis=-1, keepdims=True))).astype(g.dtype)


LMOS: dict[str, Callable[..., jax.Array]] = {
    "spectral": spectral,
    "spectral_conv": spectral_conv,
    "colnorm": colnorm,
    "rownorm": rownorm,
    "sign": sign,
    "bias": bias,
}
_ORTHOGONALIZING = ("spectral", "spectral_conv")


def get(name: str, **ns) -> Callable[[jax.Array], jax.Array]:
    """The LMO called ``name``; ``ns`` (coeffs, steps, dtype) is bound to the
    Newton–Schulz-based ones and ignored by the others."""
    if name not in LMOS:
        raise ValueError(f"unknown LMO {name!r}; choose one of {sorted(LMOS)}")
    if name in _ORTHOGONALIZING and ns:
        resolve(ns.get("coeffs", DEFAULT_PRESET), ns.get("steps"))
        return functools.partial(LMOS[name], **ns)
    return LMOS[name]
