"""Scale invariance: every LMO, and normalization in both forms, give the same update for g and s·g.

Each is homogeneous of degree 0 in g (Pethick et al. 2025, Sec. 3: an LMO
depends on the gradient's direction only; Large et al. 2024, Sec. 3: a
normalized update has the target norm whatever the gradient's size). In f32
and bf16 the scales 1e-30 ... 1e30 must not change the result beyond
rounding: every norm divides by the largest entry before squaring
(optim.magnitude), so no square overflows (past ~1e19) or underflows (below
~1e-19). Each affected norm and map is checked at 1e30 and 1e-30 against a
float64 numpy computation, where those squares are representable.

Newton–Schulz adds its eps of 1e-7 to the Frobenius norm of G/max|G|, not of G
as the Muon and Scion reference implementations do: on ordinary gradients the
two agree within float32 rounding (checked against the reference formula),
and below ‖G‖_F ≈ 1e-3, where the reference's eps shrinks the update, ours
still orthogonalizes.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optim
from optim import lmo, norms
from optim.geometry import Geometry
from optim.newton_schulz import PRESETS

SCALES = [1e-30, 1e-12, 1e-6, 1.0, 1e6, 1e12, 1e30]
LMO_SHAPES = {"spectral": (2, 24, 40), "spectral_conv": (3, 3, 8, 16), "colnorm": (50, 16), "rownorm": (16, 10),
              "sign": (7, 9), "bias": (2, 10)}


@pytest.mark.parametrize("name", sorted(LMO_SHAPES))
def test_every_lmo_depends_on_the_direction_only(name):
    g = jnp.asarray(np.random.default_rng(0).standard_normal(LMO_SHAPES[name]), jnp.float32)
    fn = lmo.get(name)
    reference = np.asarray(fn(g), np.float64)
    assert np.abs(reference).max() > 0
    for s in SCALES:
        got = np.asarray(fn(g * s), np.float64)
        np.testing.assert_allclose(got, reference, rtol=2e-4, atol=2e-5 * np.abs(reference).max(), err_msg=f"scale {s}")


def _geometry():
    return {"w": Geometry("hidden", "spectral", 64, 64, 1.0, 1.0, 0.5, ("embed", "mlp")),
            "e": Geometry("embedding", "embed", 32, 64, 1.0, 1.0, 0.25, ("vocab", "embed"))}


@pytest.mark.parametrize("form", ["scaled", "dual"])
def test_normalized_update_has_its_target_norm_at_any_gradient_scale(form):
    """The scaled form's power step on a 1e18-scale gradient used to overflow to a zero vector and pass the
    raw update through (1e19x the target); at 1e-12 the update came out 1.6e-11x the target. The dual
    form's Newton-Schulz and embedding norm used to give zero at 1e30 and shrink below 1e-3."""
    geometry, lr = _geometry(), 0.1
    rng = np.random.default_rng(1)
    params = {"w": jnp.zeros((64, 64)), "e": jnp.zeros((32, 64))}
    for s in [1e-30, 1e-12, 1.0, 1e18, 1e30]:
        tx = optim.normalized(optax.identity(), geometry, lr, form=form)
        state = tx.init(params)
        for _ in range(8):  # power iteration warms up over steps; every one must stay on target
            g = {k: jnp.asarray(rng.standard_normal(v.shape) * s, jnp.float32) for k, v in params.items()}
            u, state = jax.jit(tx.update)(g, state, params)
            w = np.asarray(u["w"], np.float64)
            spectral = np.linalg.svd(w, compute_uv=False)[0]  # RMS->RMS norm of a square matrix
            e = np.asarray(u["e"], np.float64)
            embed = np.sqrt((e ** 2).mean(axis=-1)).max()
            assert np.isfinite(w).all() and np.isfinite(e).all(), s
            # the scaled form's estimate is within [norm/sqrt(min(m, n)), norm] (optim.norms.Spectral.estimate)
            assert 0.99 <= spectral / (lr * 0.5) <= (math.sqrt(min(w.shape)) if form == "scaled" else 1.01), s
            np.testing.assert_allclose(embed / (lr * 0.25), 1.0, rtol=1e-4, err_msg=f"scale {s}")
        assert all(np.isfinite(np.asarray(v)).all() and np.abs(np.asarray(v)).max() > 0 for v in state[1].vectors)


def _reference_newton_schulz(x, preset):
    """The reference implementations' Newton-Schulz in float32 (X / (||X||_F + 1e-7), then the steps)."""
    table, safety = PRESETS[preset]
    y = x / (safety * jnp.sqrt(jnp.sum(x * x)) + 1e-7)
    for a, b, c in table:
        gram = y @ y.T
        y = a * y + (b * gram + c * gram @ gram) @ y
    return y


NS_ROUNDING = 4e-6
"""Float32 rounding through five Newton-Schulz steps, entry-wise: the reference formula itself differs by up to
1.3e-6 between a jitted and an eager run, and by 1.1e-6 on G and G·(1 + 1e-7)."""


@pytest.mark.parametrize("preset", ["muon", "polar_express"])
def test_newton_schulz_equals_the_reference_formula_on_ordinary_gradients(preset):
    """Adding eps at the scale of G / max|G| changes nothing beyond float32 rounding for ||G||_F from 0.3 up; at
    ||G||_F = 3e-4 the reference's eps already moves the result by over fifty times that rounding."""
    g = jnp.asarray(np.random.default_rng(3).standard_normal((24, 40)), jnp.float32)  # ||g||_F = 31
    reference = jax.jit(_reference_newton_schulz, static_argnums=1)
    for s in (1e-2, 1.0, 1e3):
        np.testing.assert_allclose(optim.orthogonalize(g * s, coeffs=preset), reference(g * s, preset),
                                   atol=NS_ROUNDING, err_msg=f"scale {s}")
    tiny = g * 1e-5
    moved = np.abs(np.asarray(optim.orthogonalize(tiny, coeffs=preset) - reference(tiny, preset))).max()
    assert moved > 50 * NS_ROUNDING


def test_newton_schulz_orthogonalizes_tiny_gradients_the_reference_shrinks():
    """||G||_F = 1e-11: the reference's X / (||X||_F + eps) leaves singular values near 1e-4, too small for five
    steps (top singular value below 0.1); ours orthogonalizes it like G at unit scale."""
    g = jnp.asarray(np.random.default_rng(2).standard_normal((16, 16)), jnp.float32)
    g = g / jnp.linalg.norm(g) * 1e-11
    assert np.linalg.svd(np.asarray(_reference_newton_schulz(g, "muon"), np.float64), compute_uv=False)[0] < 0.1
    np.testing.assert_allclose(optim.orthogonalize(g, coeffs="muon"), optim.orthogonalize(g * 1e11, coeffs="muon"),
                               rtol=1e-4, atol=1e-5)


def _polar(m):
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    return u @ vt


def _rms(x, axis=-1):
    return np.sqrt(np.mean(x**2, axis=axis, keepdims=True))


def _spectral(w):  # RMS->RMS norm of one (d_in, d_out) matrix
    return math.sqrt(w.shape[0] / w.shape[1]) * np.linalg.svd(w, compute_uv=False)[0]


def _conv_taps(g):  # (k, k, c_in, c_out) -> its k*k taps
    return g.reshape(-1, *g.shape[-2:])


NUMPY = {  # name: (function of optim on one array, its float64 numpy counterpart, shape)
    "lmo colnorm": (lmo.colnorm, lambda g: g / _rms(g), (30, 12)),
    "lmo rownorm": (lmo.rownorm, lambda g: g / np.linalg.norm(g, axis=0) / math.sqrt(g.shape[0]), (12, 30)),
    "lmo bias": (lmo.bias, lambda g: g / _rms(g), (17,)),
    "lmo spectral": (lambda g: lmo.spectral(g, coeffs="convergent"),
                     lambda g: math.sqrt(g.shape[1] / g.shape[0]) * _polar(g), (24, 40)),
    "lmo spectral_conv": (lambda g: lmo.spectral_conv(g, coeffs="convergent"),
                          lambda g: (_polar(g.reshape(-1, g.shape[-1])) * math.sqrt(g.shape[-1] / g.shape[-2]) / 9
                                     ).reshape(g.shape), (3, 3, 6, 10)),
    "embed value": (norms.get("embed").value, lambda g: _rms(g).max(), (30, 12)),
    "rms value": (norms.get("rms").value, lambda g: _rms(g)[0], (17,)),
    "spectral value": (norms.get("spectral").value, _spectral, (24, 40)),
    "conv value": (norms.get("conv").value, lambda g: 9 * max(_spectral(t) for t in _conv_taps(g)), (3, 3, 6, 10)),
    "embed dual": (norms.get("embed").dual, lambda g: g / _rms(g), (30, 12)),
    "rms dual": (norms.get("rms").dual, lambda g: g / _rms(g), (17,)),
    "spectral dual": (lambda g: norms.get("spectral").dual(g, ns_coeffs="convergent"),
                      lambda g: math.sqrt(g.shape[1] / g.shape[0]) * _polar(g), (24, 40)),
    "conv dual": (lambda g: norms.get("conv").dual(g, ns_coeffs="convergent"),  # each tap on its own, / k^2
                  lambda g: np.stack([_polar(t) for t in _conv_taps(g)]).reshape(g.shape)
                  * math.sqrt(g.shape[-1] / g.shape[-2]) / 9, (3, 3, 6, 10)),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scale", [1e30, 1e-30])
@pytest.mark.parametrize("name", sorted(NUMPY))
def test_norms_and_maps_at_extreme_scales_against_float64(name, scale, dtype):
    """Squares of these entries overflow (1e30) or underflow (1e-30) float32 and bfloat16; float64 holds them."""
    fn, reference, shape = NUMPY[name]
    g = jnp.asarray(np.random.default_rng(4).standard_normal(shape) * scale, dtype)
    want = reference(np.asarray(g, np.float64))
    got = np.asarray(fn(g), np.float64)
    assert np.isfinite(got).all()
    rtol = 1e-2 if dtype == "bfloat16" and "value" not in name else 1e-4  # values are computed in float32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
