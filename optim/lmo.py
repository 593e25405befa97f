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

Every norm is computed on the gradient divided by its largest entry
(:mod:`optim.magnitude`), so each map gives the same direction at any scale
of a finite input, 1e-30 or 1e30, in float32 and bfloat16, where a direct
sum of squares would overflow or underflow.

The two Newton–Schulz-based LMOs are :class:`PolarMap` records (a matrix view
and a scale); :func:`apply_all` applies a list of maps with one Newton–Schulz
call per matrix shape (:func:`optim.newton_schulz.orthogonalize_all`), which
is how Scion, Muon and the normalized dual form run them.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from optim.magnitude import normalize
from optim.newton_schulz import DEFAULT_PRESET, orthogonalize_all, resolve


def _need_ndim(name: str, g: jax.Array, core: int, layout: str) -> None:
    if g.ndim < core:
        raise ValueError(
            f"the {name!r} LMO needs an array of layout {layout}; got shape {g.shape}"
            + (" (give vectors the 'bias' LMO)" if core > 1 else "")
        )


def spectral_scale(shape: tuple[int, ...]) -> float:
    """sqrt(d_out/d_in) for a (..., d_in, d_out) kernel: the spectral LMO's factor."""
    d_in, d_out = shape[-2:]
    return math.sqrt(d_out / d_in)


def spectral_conv_scale(shape: tuple[int, ...]) -> float:
    """sqrt(c_out/c_in)/(kh·kw) for a (..., kh, kw, c_in, c_out) kernel."""
    kh, kw, c_in, c_out = shape[-4:]
    return math.sqrt(c_out / c_in) / (kh * kw)


class PolarMap(NamedTuple):
    """A direction of the form scale(g.shape) · UVᵀ of ``view(g)``, a stack (..., m, n) of matrices, reshaped
    back to g's shape: a Newton–Schulz-based LMO or dual map, in the form :func:`apply_all` batches."""

    view: Callable[[jax.Array], jax.Array]
    scale: Callable[[tuple[int, ...]], float]


def as_matrices(g: jax.Array) -> jax.Array:
    """A (..., d_in, d_out) array as it is: a stack of matrices (checked)."""
    _need_ndim("spectral", g, 2, "(..., d_in, d_out)")
    return g


def taps_flattened(g: jax.Array) -> jax.Array:
    """A (..., k, k, c_in, c_out) kernel as (..., k·k·c_in, c_out) matrices (the paper's flattening)."""
    _need_ndim("spectral_conv", g, 4, "(..., k, k, c_in, c_out)")
    *stack, kh, kw, c_in, c_out = g.shape
    return g.reshape(*stack, kh * kw * c_in, c_out)


SPECTRAL = PolarMap(as_matrices, spectral_scale)
"""The spectral LMO: sqrt(d_out/d_in)·UVᵀ of each (d_in, d_out) matrix."""
SPECTRAL_CONV = PolarMap(taps_flattened, spectral_conv_scale)
"""The spectral conv LMO: UVᵀ of the kernel as (k·k·c_in, c_out), times sqrt(c_out/c_in)/k²."""


def apply_all(maps: Sequence, grads: Sequence[jax.Array], *, coeffs=DEFAULT_PRESET, steps=None,
              dtype=jnp.float32) -> list[jax.Array]:
    """``maps[i](grads[i])`` for every i, where a map is a function of the gradient or a :class:`PolarMap`.

    The PolarMaps' matrices all go through one :func:`optim.newton_schulz.orthogonalize_all`
    (one Newton–Schulz call per matrix shape); ``coeffs``, ``steps``, ``dtype`` go to it.
    """
    polar = [i for i, f in enumerate(maps) if isinstance(f, PolarMap)]
    done = orthogonalize_all([maps[i].view(grads[i]) for i in polar], coeffs=coeffs, steps=steps, dtype=dtype)
    out = [None if isinstance(f, PolarMap) else f(g) for f, g in zip(maps, grads)]
    for i, o in zip(polar, done):
        g = grads[i]
        out[i] = o.reshape(g.shape) * jnp.asarray(maps[i].scale(g.shape), g.dtype)
    return out


def spectral(g: jax.Array, *, coeffs=DEFAULT_PRESET, steps=None, dtype=jnp.float32) -> jax.Array:
    """Spectral (RMS→RMS) LMO: sqrt(d_out/d_in)·UVᵀ, by Newton–Schulz.

    ``coeffs``, ``steps``, ``dtype`` go to :func:`optim.orthogonalize`.
    """
    return apply_all([SPECTRAL], [g], coeffs=coeffs, steps=steps, dtype=dtype)[0]


def spectral_conv(g: jax.Array, *, coeffs=DEFAULT_PRESET, steps=None, dtype=jnp.float32) -> jax.Array:
    """Spectral LMO for convolutions: UVᵀ of the kernel flattened to
    (k·k·c_in, c_out), times sqrt(c_out/c_in)/k²."""
    return apply_all([SPECTRAL_CONV], [g], coeffs=coeffs, steps=steps, dtype=dtype)[0]


def colnorm(g: jax.Array) -> jax.Array:
    """ColNorm (ℓ1→RMS) LMO: each input's weights (a flax row) scaled to ℓ2 norm sqrt(d_out)."""
    _need_ndim("colnorm", g, 2, "(..., d_in, d_out)")
    return normalize(g.astype(jnp.float32), -1, math.sqrt(g.shape[-1])).astype(g.dtype)


def rownorm(g: jax.Array) -> jax.Array:
    """RowNorm (RMS→ℓ∞) LMO: each output's weights (a flax column) scaled to ℓ2 norm 1/sqrt(d_in)."""
    _need_ndim("rownorm", g, 2, "(..., d_in, d_out)")
    return normalize(g.astype(jnp.float32), -2, 1 / math.sqrt(g.shape[-2])).astype(g.dtype)


def sign(g: jax.Array) -> jax.Array:
    """Sign (RMS→ℓ∞ via ℓ1→ℓ∞) LMO: sign(G)/d_in."""
    _need_ndim("sign", g, 2, "(..., d_in, d_out)")
    return (jnp.sign(g) / g.shape[-2]).astype(g.dtype)


def bias(g: jax.Array) -> jax.Array:
    """Bias (RMS) LMO for biases and gains: G / RMS(G) over the last axis."""
    _need_ndim("bias", g, 1, "(..., d)")
    return normalize(g.astype(jnp.float32), -1, math.sqrt(g.shape[-1])).astype(g.dtype)


LMOS: dict[str, Callable[..., jax.Array]] = {
    "spectral": spectral,
    "spectral_conv": spectral_conv,
    "colnorm": colnorm,
    "rownorm": rownorm,
    "sign": sign,
    "bias": bias,
}
_POLAR = {"spectral": SPECTRAL, "spectral_conv": SPECTRAL_CONV}


def _known(name: str) -> None:
    if name not in LMOS:
        raise ValueError(f"unknown LMO {name!r}; choose one of {sorted(LMOS)}")


def get(name: str, **ns) -> Callable[[jax.Array], jax.Array]:
    """The LMO called ``name``; ``ns`` (coeffs, steps, dtype) is bound to the
    Newton–Schulz-based ones and ignored by the others."""
    _known(name)
    if name in _POLAR and ns:
        resolve(ns.get("coeffs", DEFAULT_PRESET), ns.get("steps"))
        return functools.partial(LMOS[name], **ns)
    return LMOS[name]


def batchable(name: str):
    """The LMO called ``name`` in the form :func:`apply_all` takes: a :class:`PolarMap` for the
    Newton–Schulz-based ones, the function for the others."""
    _known(name)
    return _POLAR.get(name, LMOS[name])
