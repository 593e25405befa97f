"""Newton–Schulz orthogonalization: the one polar-factor kernel in `optim`.

``orthogonalize(G)`` approximates U Vᵀ for G = U S Vᵀ by the odd matrix
polynomial iteration

    X ← a·X + (b·A + c·A²)·X,   A = X·Xᵀ,

after transposing so that the short side comes first (three matrix products
per step, 2m²n + 2m³ + 2m²n flops for an m × n matrix with m ≤ n) and dividing
G by ``safety·‖G‖_F + eps``. Every Scion, normalized and Muon update in this
package calls it, through :func:`orthogonalize_all`, which stacks all
matrices of one shape into one call.

The Frobenius norm is taken of G divided by its largest entry (Blue 1978; see
:mod:`optim.magnitude`), so no square overflows or underflows, and eps is
added at that scale: G / (safety·‖G‖_F + eps·max|G|). The reference
implementations (Jordan's Muon, Scion) add eps to ‖G‖_F itself; on ordinary
gradients the two agree within float32 rounding (the relative difference is
eps·(1 − max|G|)/‖G‖_F), but theirs shrinks every gradient with ‖G‖_F below
about 1e-3 (singular values near ‖G‖_F/eps after the division, too small for
the iteration to lift) and overflows past entries of about 1e19, while this
one orthogonalizes any finite nonzero G and still maps zero to zero.

Presets (per step (a, b, c); the figures are measured against numpy's SVD
by ``tests/test_optim_newton_schulz.py``):

=================  =====  ============================  ==========================
preset             steps  singular values land in       rel. Frobenius error vs UVᵀ
                                                          (Gaussian 3072×768 / σᵢ=1/i)
=================  =====  ============================  ==========================
``muon``           5      ≈[0.68, 1.13]                 0.16 / 0.29
``polar_express``  5      ≈[0.86, 1.14]                 0.10 / 0.10
``five_step``      5      ≈[0.98, 1.03] if σ/‖G‖_F≥1e-2  0.017 / 0.27
``six_step``       6      ≈[0.996, 0.999] likewise      0.011 / 0.04
``convergent``     12     1.000                         ≤0.005 / 0.06 in bf16 (≈0 in f32)
=================  =====  ============================  ==========================

``muon`` is Jordan's quintic (modded-nanogpt, 2024); ``polar_express`` is Amsel
et al. 2025, "The Polar Express", with its safety factor (coefficients already
divided by 1.01 and G divided by 1.02·‖G‖_F); ``five_step`` is the per-step
table of Ahn et al. 2025 ("Dion"); ``six_step`` is a six-step per-step table
of integers ÷ 1024, tuned for a tight band; ``convergent`` is p(x) = 2x − 1.5x³ + 0.5x⁵,
which has p(1) = 1 and p'(1) = 0 and so converges to 1.

Default: ``polar_express``. Of the presets that cost no more than five steps
(``muon``, ``polar_express``, ``five_step``), it has the smallest worst-case
error over the two reference matrices (0.10 against 0.27 and 0.29): gradients
are ill-conditioned, and ``five_step`` leaves every singular value below 1e-2
of ‖G‖_F unconverged, so its 0.017 on a Gaussian does not carry over.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from optim.magnitude import max_scaled

Triple = tuple[float, float, float]


class Preset(NamedTuple):
    """A named coefficient table: one (a, b, c) per step, and the factor on ‖G‖_F."""

    coeffs: tuple[Triple, ...]
    safety: float


PRESETS: dict[str, Preset] = {
    "muon": Preset(((3.4445, -4.7750, 2.0315),) * 5, 1.0),
    "polar_express": Preset(
        (
            (8.156554524902461, -22.48329292557795, 15.878769915207462),
            (4.042929935166739, -2.808917465908714, 0.5000178451051316),
            (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
            (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
            (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
        ),
        1.02,
    ),
    "five_step": Preset(
        (
            (4.0848, -6.8946, 2.9270),
            (3.9505, -6.3029, 2.6377),
            (3.7418, -5.5913, 2.3037),
            (2.8769, -3.1427, 1.2046),
            (2.8366, -3.0525, 1.2012),
        ),
        1.0,
    ),
    "six_step": Preset(
        tuple(
            (a / 1024, b / 1024, c / 1024)
            for a, b, c in (
                (3955, -8306, 5008),
                (3735, -6681, 3463),
                (3799, -6499, 3211),
                (4019, -6385, 2906),
                (2677, -3029, 1162),
                (2172, -1833, 682),
            )
        ),
        1.0,
    ),
    "convergent": Preset(((2.0, -1.5, 0.5),) * 12, 1.0),
}
DEFAULT_PRESET = "polar_express"


def resolve(coeffs: str | Triple | Sequence[Triple], steps: int | None) -> Preset:
    """The per-step table that ``coeffs`` and ``steps`` name.

    ``coeffs`` is a preset name, one (a, b, c) triple (repeated ``steps``
    times, default 5) or a sequence of triples (one per step). ``steps``
    changes the step count of a preset whose steps all share one triple
    (``muon``, ``convergent``); per-step tables run exactly their own length.
    """
    if isinstance(coeffs, str):
        if coeffs not in PRESETS:
            raise ValueError(f"unknown Newton–Schulz preset {coeffs!r}; choose one of {sorted(PRESETS)}")
        table, safety = PRESETS[coeffs]
    else:
        rows = [coeffs] if all(isinstance(v, (int, float)) for v in coeffs) else list(coeffs)
        if not rows or any(len(row) != 3 for row in rows):
            raise ValueError(f"Newton–Schulz coefficients must be (a, b, c) or a sequence of them; got {coeffs!r}")
        rows = tuple(tuple(float(v) for v in row) for row in rows)
        table, safety = (rows * 5 if len(rows) == 1 else rows), 1.0
    if steps is None or steps == len(table):
        return Preset(table, safety)
    if steps < 1:
        raise ValueError(f"Newton–Schulz steps must be >= 1; got {steps}")
    if len(set(table)) != 1:
        raise ValueError(
            f"{coeffs!r} is a per-step table of {len(table)} steps; steps={steps} is not available (leave steps=None)"
        )
    return Preset(table[:1] * steps, safety)


def _need_matrices(x: jax.Array) -> None:
    if x.ndim < 2:
        raise ValueError(f"orthogonalize needs a matrix or a stack of matrices (..., m, n); got shape {x.shape}")


def _step(x: jax.Array, a: float, b: float, c: float) -> jax.Array:
    """One iteration X ← aX + (bA + cA²)X with A = XXᵀ, batched over leading axes."""
    gram = x @ jnp.swapaxes(x, -1, -2)
    poly = b * gram + c * (gram @ gram)
    return a * x + poly @ x


def orthogonalize(
    x: jax.Array,
    *,
    coeffs: str | Triple | Sequence[Triple] = DEFAULT_PRESET,
    steps: int | None = None,
    dtype=jnp.float32,
    eps: float = 1e-7,
) -> jax.Array:
    """Approximate the polar factor U Vᵀ of each matrix in ``x`` by Newton–Schulz.

    Args:
      x: an (m, n) matrix or a stack (..., m, n); leading axes are independent
        matrices.
      coeffs: a preset name (see the module table), one (a, b, c) triple, or a
        sequence of triples, one per step.
      steps: step count for presets with one repeated triple (default: the
        preset's own).
      dtype: the dtype the iteration runs in (float32 by default, also for
        bfloat16 inputs); the result is cast back to ``x.dtype``.
      eps: added to the Frobenius norm of G / max|G| before dividing (module
        docstring); an all-zero matrix maps to zeros.

    Returns:
      An array of ``x``'s shape and dtype whose singular values lie in the
      preset's band and whose singular vectors are those of ``x``.
    """
    _need_matrices(x)
    table, safety = resolve(coeffs, steps)
    y = x.astype(dtype)
    wide = y.shape[-2] <= y.shape[-1]
    if not wide:
        y = jnp.swapaxes(y, -1, -2)
    y, _ = max_scaled(y, (-2, -1))
    fro = jnp.sqrt(jnp.sum(jnp.square(y), axis=(-2, -1), keepdims=True))
    y = y / (safety * fro + eps)
    for a, b, c in table:
        y = _step(y, a, b, c)
    if not wide:
        y = jnp.swapaxes(y, -1, -2)
    return y.astype(x.dtype)


def orthogonalize_all(
    xs: Sequence[jax.Array],
    *,
    coeffs: str | Triple | Sequence[Triple] = DEFAULT_PRESET,
    steps: int | None = None,
    dtype=jnp.float32,
) -> list[jax.Array]:
    """:func:`orthogonalize` of every array in ``xs``, with one Newton–Schulz call per matrix shape.

    Each array is a matrix or a stack (..., m, n). The polar factor of Gᵀ is
    (UVᵀ)ᵀ, and :func:`orthogonalize` itself turns a tall matrix into a wide one
    before iterating, so an (m, n) and an (n, m) matrix run the same arithmetic
    once both are wide: every matrix whose wide shape (min(m, n), max(m, n))
    is equal is stacked into one (N, min, max) array, orthogonalized in one
    call (one batched product per step instead of one per array: the same
    flops in fewer, larger kernels) and split back. Each result has its
    array's shape and dtype. ``coeffs``, ``steps``, ``dtype``: as in
    :func:`orthogonalize`.
    """
    wide, groups = [], {}
    for i, x in enumerate(xs):
        _need_matrices(x)
        y = x.astype(dtype)
        if y.shape[-2] > y.shape[-1]:
            y = jnp.swapaxes(y, -1, -2)
        wide.append(y.reshape(-1, *y.shape[-2:]))
        groups.setdefault(wide[-1].shape[1:], []).append(i)
    out = [None] * len(xs)
    for members in groups.values():
        stacked = jnp.concatenate([wide[i] for i in members]) if len(members) > 1 else wide[members[0]]
        done = orthogonalize(stacked, coeffs=coeffs, steps=steps, dtype=dtype)
        offsets = list(itertools.accumulate(wide[i].shape[0] for i in members))[:-1]
        for i, part in zip(members, jnp.split(done, offsets)):
            x = xs[i]
            if x.shape[-2] > x.shape[-1]:
                part = jnp.swapaxes(part, -1, -2)
            out[i] = part.reshape(x.shape).astype(x.dtype)
    return out
