"""Newton–Schulz against numpy's SVD: the module's preset table, batching, dtypes, edge cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optim
from optim.newton_schulz import PRESETS

# preset: (rel. Frobenius error on Gaussian 3072x768, on sigma_i = 1/i 768x3072, singular-value band on the Gaussian)
TABLE = {
    "muon": (0.16, 0.29, (0.68, 1.13)),
    "polar_express": (0.10, 0.10, (0.86, 1.14)),
    "five_step": (0.017, 0.27, (0.98, 1.03)),
    "six_step": (0.011, 0.04, (0.996, 0.999)),
}
BAND_SLACK = 0.01


def polar(g):
    """U V^T of g in float64, as G (G^T G)^(-1/2) from an eigendecomposition of the small Gram matrix."""
    g = np.asarray(g, np.float64)
    if g.shape[0] < g.shape[1]:
        return polar(g.T).T
    w, q = np.linalg.eigh(g.T @ g)
    return g @ (q / np.sqrt(w)) @ q.T


def singular_values(x):
    """Singular values in float64, from the eigenvalues of the small Gram matrix."""
    x = np.asarray(x, np.float64)
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None))


def rel_err(x, ref):
    return np.linalg.norm(np.asarray(x, np.float64) - ref) / np.linalg.norm(ref)


@pytest.fixture(scope="module")
def reference_matrices():
    rng = np.random.default_rng(0)
    gauss = rng.standard_normal((3072, 768)).astype(np.float32)
    u = polar(rng.standard_normal((768, 768)))
    v = polar(rng.standard_normal((3072, 768)))
    ill = ((u / np.arange(1, 769)) @ v.T).astype(np.float32)  # 768x3072, sigma_i = 1/i, polar factor u v^T
    return {"gauss": (gauss, polar(gauss)), "ill": (ill, u @ v.T)}


@pytest.mark.parametrize("preset", sorted(TABLE))
def test_preset_matches_reference_table(preset, reference_matrices):
    err_gauss, err_ill, (lo, hi) = TABLE[preset]
    f = jax.jit(lambda x: optim.orthogonalize(x, coeffs=preset))
    g, ref = reference_matrices["gauss"]
    out = f(g)
    assert abs(rel_err(out, ref) - err_gauss) < 0.02
    sv = singular_values(out)
    assert lo - BAND_SLACK <= sv.min() and sv.max() <= hi + BAND_SLACK, (sv.min(), sv.max())
    g, ref = reference_matrices["ill"]
    assert abs(rel_err(f(g), ref) - err_ill) < 0.02


def test_convergent_preset_in_bf16_matches_table(reference_matrices):
    """The table's convergent figures are bf16 ones: <=0.005 / 0.06; in f32 it converges."""
    f = jax.jit(lambda x, dt: optim.orthogonalize(x, coeffs="convergent", dtype=dt), static_argnums=1)
    g, ref = reference_matrices["gauss"]
    assert rel_err(f(g, jnp.bfloat16), ref) <= 0.005 + 0.02
    assert rel_err(f(g, jnp.float32), ref) < 1e-3
    g, ref = reference_matrices["ill"]
    assert abs(rel_err(f(g, jnp.bfloat16), ref) - 0.06) < 0.02
    assert rel_err(f(g, jnp.float32), ref) < 1e-3


def test_default_is_polar_express():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((32, 48)), jnp.float32)
    np.testing.assert_array_equal(optim.orthogonalize(x), optim.orthogonalize(x, coeffs="polar_express"))
    assert optim.DEFAULT_PRESET == "polar_express"


def well_conditioned(rng, shape, batch=()):
    """Matrices with singular values spread over [0.2, 1] (converge fully in 12 convergent steps)."""
    m, n = shape
    k = min(m, n)
    out = np.empty(batch + shape, np.float32)
    for idx in np.ndindex(*batch):
        u, _ = np.linalg.qr(rng.standard_normal((m, k)))
        v, _ = np.linalg.qr(rng.standard_normal((n, k)))
        out[idx] = (u * np.linspace(1.0, 0.2, k)) @ v.T
    return out


@pytest.mark.parametrize("shape", [(64, 64), (96, 40), (40, 96)], ids=["square", "tall", "wide"])
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)], ids=["single", "batch3", "batch2x2"])
def test_square_tall_wide_single_and_batched(shape, batch):
    x = well_conditioned(np.random.default_rng(1), shape, batch)
    out = np.asarray(jax.jit(lambda a: optim.orthogonalize(a, coeffs="convergent"))(x))
    assert out.shape == x.shape
    for idx in np.ndindex(*batch):
        np.testing.assert_allclose(out[idx], polar(x[idx]), atol=2e-4)


def test_ill_conditioned_square_keeps_singular_vectors():
    """A square Gaussian (sigma_min / ||G||_F ~ 1e-5): polar_express maps each singular value above
    1e-3 ||G||_F into its band, the rest to (0, band], and keeps the singular vectors."""
    x = np.random.default_rng(2).standard_normal((128, 128)).astype(np.float32)
    out = np.asarray(optim.orthogonalize(x), np.float64)
    u, s, vt = np.linalg.svd(x.astype(np.float64))
    core = u.T @ out @ vt.T  # diagonal when the singular vectors are kept
    mapped = np.diag(core)
    assert np.abs(core - np.diag(mapped)).max() < 1e-3
    resolved = s / np.linalg.norm(x) >= 1e-3
    assert 0 < (~resolved).sum() < 5
    assert np.all((mapped[resolved] >= 0.86 - BAND_SLACK) & (mapped[resolved] <= 1.14 + BAND_SLACK))
    assert np.all((mapped > 0) & (mapped <= 1.14 + BAND_SLACK))


def test_zero_input_gives_zeros_not_nan():
    for preset in PRESETS:
        out = optim.orthogonalize(jnp.zeros((2, 16, 24)), coeffs=preset)
        assert not np.isnan(np.asarray(out)).any()
        np.testing.assert_array_equal(out, 0.0)
    mixed = jnp.stack([jnp.zeros((8, 8)), jnp.eye(8)])
    out = np.asarray(optim.orthogonalize(mixed, coeffs="convergent"))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], np.eye(8), atol=1e-5)


def test_scale_invariant():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((48, 32)), jnp.float32)
    a = optim.orthogonalize(x)
    np.testing.assert_allclose(optim.orthogonalize(250.0 * x), a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(optim.orthogonalize(0.004 * x), a, rtol=1e-4, atol=1e-5)


def test_bf16_input_computes_in_f32_and_returns_bf16():
    x = jnp.asarray(np.random.default_rng(4).standard_normal((64, 128)), jnp.bfloat16)
    out = optim.orthogonalize(x)
    assert out.dtype == jnp.bfloat16
    ref = optim.orthogonalize(x.astype(jnp.float32))
    np.testing.assert_array_equal(out, ref.astype(jnp.bfloat16))
    low = optim.orthogonalize(x, dtype=jnp.bfloat16)
    assert low.dtype == jnp.bfloat16
    exact = polar(np.asarray(x.astype(jnp.float32)))
    assert abs(rel_err(low.astype(jnp.float32), exact) - rel_err(ref, exact)) < 0.03  # the preset table: about 0.02


def test_custom_coefficients():
    x = jnp.asarray(np.random.default_rng(5).standard_normal((32, 64)), jnp.float32)
    np.testing.assert_array_equal(
        optim.orthogonalize(x, coeffs=(2.0, -1.5, 0.5), steps=12), optim.orthogonalize(x, coeffs="convergent")
    )
    table = PRESETS["five_step"].coeffs
    np.testing.assert_array_equal(optim.orthogonalize(x, coeffs=table), optim.orthogonalize(x, coeffs="five_step"))
    one = optim.orthogonalize(x, coeffs="muon", steps=1)
    ref = x / (jnp.linalg.norm(x) + 1e-7)
    a, b, c = PRESETS["muon"].coeffs[0]
    gram = ref @ ref.T
    np.testing.assert_allclose(one, a * ref + (b * gram + c * gram @ gram) @ ref, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_clear_errors():
    x = jnp.ones((8, 8))
    with pytest.raises(ValueError, match=r"unknown Newton–Schulz preset 'cubic'; choose one of \['convergent', 'five_step', 'muon', 'polar_express', 'six_step'\]"):
        optim.orthogonalize(x, coeffs="cubic")
    with pytest.raises(ValueError, match=r"per-step table of 5 steps; steps=7 is not available"):
        optim.orthogonalize(x, coeffs="polar_express", steps=7)
    with pytest.raises(ValueError, match=r"needs a matrix or a stack of matrices \(\.\.\., m, n\); got shape \(8,\)"):
        optim.orthogonalize(jnp.ones(8))
    with pytest.raises(ValueError, match=r"must be \(a, b, c\)"):
        optim.orthogonalize(x, coeffs=(1.0, 2.0))


PUBLISHED = {  # (a, b, c) per step and the factor on ||G||_F, as their sources print them
    "muon": ([(3.4445, -4.7750, 2.0315)] * 5, 1.0),  # Jordan, modded-nanogpt (2024)
    "polar_express": ([(8.156554524902461, -22.48329292557795, 15.878769915207462),  # Amsel et al. 2025, Alg. 1
                       (4.042929935166739, -2.808917465908714, 0.5000178451051316),
                       (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
                       (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
                       (2.3465413258596377, -1.7097828382687081, 0.42323551169305323)], 1.02),
    "five_step": ([(4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377), (3.7418, -5.5913, 2.3037),  # Ahn et al. 2025
                   (2.8769, -3.1427, 1.2046), (2.8366, -3.0525, 1.2012)], 1.0),
    "six_step": ([(3955 / 1024, -8306 / 1024, 5008 / 1024), (3735 / 1024, -6681 / 1024, 3463 / 1024),
                  (3799 / 1024, -6499 / 1024, 3211 / 1024), (4019 / 1024, -6385 / 1024, 2906 / 1024),
                  (2677 / 1024, -3029 / 1024, 1162 / 1024), (2172 / 1024, -1833 / 1024, 682 / 1024)], 1.0),
    "convergent": ([(2.0, -1.5, 0.5)] * 12, 1.0),
}


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_singular_values_follow_the_published_polynomials(preset):
    """Each step maps every singular value s to a·s + b·s³ + c·s⁵, from s = σ / (safety·‖G‖_F): the scalar
    recursion in float64 with the published coefficients must give the output's singular values, so a changed
    coefficient (8.1566 -> 8.0) or a dropped safety factor (1.02) fails here."""
    g = np.random.default_rng(3).standard_normal((24, 40)) * np.linspace(0.05, 1.0, 40)  # spread-out spectrum
    sigma = np.linalg.svd(g, compute_uv=False)
    table, safety = PUBLISHED[preset]
    s = sigma / (safety * np.linalg.norm(g) + 1e-7)
    for a, b, c in table:
        s = a * s + b * s**3 + c * s**5
    got = np.linalg.svd(np.asarray(optim.orthogonalize(jnp.asarray(g, jnp.float32), coeffs=preset), np.float64),
                        compute_uv=False)
    np.testing.assert_allclose(np.sort(got), np.sort(np.abs(s)), rtol=2e-3, atol=2e-4)
