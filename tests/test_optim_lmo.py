"""Each LMO against an independent numpy computation in the paper's (d_out, d_in) layout."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from optim import lmo

PE_BAND = (0.86 - 0.01, 1.14 + 0.01)  # polar_express, optim.newton_schulz table (+ slack)


def gaussian(shape, seed=0, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def np_polar(m):
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64), full_matrices=False)
    return u @ vt


def sv(m):
    return np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (3, 48, 32)])
def test_spectral_norm_and_direction(shape):
    g = gaussian(shape)
    out = np.asarray(lmo.spectral(g))
    exact = np.asarray(lmo.spectral(g, coeffs="convergent"))
    scale = math.sqrt(shape[-1] / shape[-2])  # sqrt(d_out / d_in), flax (d_in, d_out)
    for idx in np.ndindex(*shape[:-2]):
        w = np.asarray(g[idx], np.float64).T  # paper layout (d_out, d_in)
        want = scale * np_polar(w).T
        s = sv(out[idx]) / scale
        assert PE_BAND[0] <= s.min() and s.max() <= PE_BAND[1]
        # rectangular Gaussians are well conditioned: there convergent NS equals the SVD
        np.testing.assert_allclose(exact[idx], want, atol=1e-4)
        # RMS->RMS norm of the direction: sqrt(d_in/d_out) * sigma_max in the band
        assert PE_BAND[0] <= math.sqrt(shape[-2] / shape[-1]) * sv(out[idx]).max() <= PE_BAND[1]


def test_spectral_conv_matches_paper_flattening():
    g = gaussian((3, 3, 8, 16), seed=1)
    out = np.asarray(lmo.spectral_conv(g, coeffs="convergent"), np.float64)
    torch_layout = np.asarray(g, np.float64).transpose(3, 2, 0, 1)  # (c_out, c_in, k, k)
    flat = torch_layout.reshape(16, 8 * 9)
    want = (np_polar(flat) * math.sqrt(16 / 8) / 9).reshape(16, 8, 3, 3).transpose(2, 3, 1, 0)
    np.testing.assert_allclose(out, want, atol=1e-5)
    stacked = jnp.stack([g, 2 * g])
    np.testing.assert_allclose(lmo.spectral_conv(stacked, coeffs="convergent")[1], out, atol=1e-5)


def test_colnorm_embedding_rows():
    g = np.asarray(gaussian((2, 50, 32), seed=2)).copy()
    g[0, 7] = 0.0  # a token absent from the batch
    out = np.asarray(lmo.colnorm(jnp.asarray(g)))
    norms = np.linalg.norm(out, axis=-1)
    np.testing.assert_allclose(np.delete(norms[0], 7), math.sqrt(32), rtol=1e-5)
    np.testing.assert_allclose(norms[1], math.sqrt(32), rtol=1e-5)
    np.testing.assert_array_equal(out[0, 7], 0.0)
    # paper layout: one-hot input layer W = table^T (d, vocab); each column to norm sqrt(d_out)
    w = g[1].T
    want = w / np.linalg.norm(w, axis=0, keepdims=True) * math.sqrt(w.shape[0])
    np.testing.assert_allclose(out[1], want.T, rtol=1e-5)


def test_rownorm_columns_of_flax_kernel():
    g = gaussian((40, 24), seed=3)
    out = np.asarray(lmo.rownorm(g))
    w = np.asarray(g, np.float64).T  # (d_out, d_in)
    want = w / np.linalg.norm(w, axis=1, keepdims=True) / math.sqrt(w.shape[1])
    np.testing.assert_allclose(out, want.T, rtol=1e-5)


def test_sign_entries():
    g = gaussian((2, 64, 10), seed=4)
    out = np.asarray(lmo.sign(g))
    np.testing.assert_array_equal(np.abs(out), 1 / 64)
    np.testing.assert_array_equal(np.sign(out), np.sign(np.asarray(g)))


def test_bias_rms_one():
    g = gaussian((3, 17), seed=5)
    out = np.asarray(lmo.bias(g))
    np.testing.assert_allclose(np.sqrt(np.mean(out**2, axis=-1)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out * np.sqrt(np.mean(np.asarray(g) ** 2, -1, keepdims=True)), g, rtol=1e-5)


SHAPES = {
    "spectral": (32, 48),
    "spectral_conv": (3, 3, 4, 8),
    "colnorm": (20, 16),
    "rownorm": (20, 16),
    "sign": (20, 16),
    "bias": (16,),
}


@pytest.mark.parametrize("name", sorted(lmo.LMOS))
def test_scale_invariant_and_zero_safe(name):
    f = lmo.get(name)
    g = gaussian(SHAPES[name], seed=6)
    base = np.asarray(f(g))
    for c in (1e-3, 7.5):
        np.testing.assert_allclose(f(c * g), base, rtol=1e-4, atol=2e-5)
    zero = np.asarray(f(jnp.zeros(SHAPES[name])))
    assert not np.isnan(zero).any()
    np.testing.assert_array_equal(zero, 0.0)


@pytest.mark.parametrize("name", sorted(lmo.LMOS))
def test_bf16_in_bf16_out(name):
    g = gaussian(SHAPES[name], seed=7, dtype=jnp.bfloat16)
    out = lmo.get(name)(g)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(out, np.float32), np.asarray(lmo.get(name)(g.astype(jnp.float32))), rtol=2e-2, atol=2e-3
    )


def test_bad_names_and_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"unknown LMO 'spectrall'; choose one of \['bias', 'colnorm', 'rownorm', 'sign', 'spectral', 'spectral_conv'\]"):
        lmo.get("spectrall")
    with pytest.raises(ValueError, match=r"the 'spectral' LMO needs an array of layout \(\.\.\., d_in, d_out\); got shape \(64,\) \(give vectors the 'bias' LMO\)"):
        lmo.spectral(jnp.ones(64))
    with pytest.raises(ValueError, match=r"the 'spectral_conv' LMO needs an array of layout \(\.\.\., k, k, c_in, c_out\); got shape \(8, 8\)"):
        lmo.spectral_conv(jnp.ones((8, 8)))
    for name in ("colnorm", "rownorm", "sign"):
        with pytest.raises(ValueError, match=rf"the '{name}' LMO needs an array"):
            lmo.get(name)(jnp.ones(5))
