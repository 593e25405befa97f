"""Momentum over several steps against independent numpy implementations.

One step cannot tell a momentum coefficient apart (on step 1 Muon's β changes
the update by 2e-8, and Adam's bias correction hides b1 and b2), so each
optimizer runs six steps on changing gradients and every update is compared
with a float64 numpy version of the published algorithm: Muon (Jordan 2024:
Nesterov momentum, Newton–Schulz, max(1, d_out/d_in)^0.5; AdamW elsewhere) and
normalized Adam (Large et al. 2024, §4: Adam's direction, then each atom's dual
map times lr·c_k).
"""

import jax.numpy as jnp
import numpy as np
import pytest

import optim
from optim.geometry import Geometry

GEOMETRY = {"w": Geometry("hidden", "spectral", 16, 40, 1.0, 1.0, 0.5, ("embed", "mlp")),
            "e": Geometry("embedding", "embed", 30, 16, 1.0, 1.0, 0.25, ("vocab", "embed"))}
SHAPES = {"w": (16, 40), "e": (30, 16)}
STEPS, LR = 6, 0.05


def _gradients():
    rng = np.random.default_rng(7)
    return [{k: rng.standard_normal(s) * (1 + t) for k, s in SHAPES.items()} for t in range(STEPS)]


def _updates(tx):
    params = {k: jnp.zeros(s, jnp.float32) for k, s in SHAPES.items()}
    state, out = tx.init(params), []
    for g in _gradients():
        u, state = tx.update({k: jnp.asarray(v, jnp.float32) for k, v in g.items()}, state, params)
        out.append({k: np.asarray(v, np.float64) for k, v in u.items()})
    return out


def _newton_schulz(x, table, safety=1.0):
    tall = x.shape[0] > x.shape[1]
    y = x.T if tall else x
    y = y / (safety * np.linalg.norm(y) + 1e-7)
    for a, b, c in table:
        gram = y @ y.T
        y = a * y + (b * gram + c * gram @ gram) @ y
    return y.T if tall else y


def _adam(grads, b1, b2, eps=1e-8):
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        yield (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)


@pytest.mark.parametrize("beta", [0.95, 0.8])
def test_muon_over_six_steps(beta):
    got = _updates(optim.muon(LR, GEOMETRY, beta=beta, adam_b1=0.9, adam_b2=0.95))
    grads = _gradients()
    trace = 0.0
    for t, g in enumerate(grads):
        trace = g["w"] + beta * trace
        direction = g["w"] + beta * trace  # Nesterov
        want = -LR * _newton_schulz(direction, [(3.4445, -4.7750, 2.0315)] * 5) * np.sqrt(max(1.0, 40 / 16))
        np.testing.assert_allclose(got[t]["w"], want, rtol=2e-4, atol=2e-6, err_msg=f"step {t + 1}")
    for t, d in enumerate(_adam([g["e"] for g in grads], 0.9, 0.95)):
        np.testing.assert_allclose(got[t]["e"], -LR * d, rtol=2e-5, atol=1e-7, err_msg=f"step {t + 1}")


@pytest.mark.parametrize("b1,b2", [(0.9, 0.99), (0.5, 0.9)])
def test_normalized_adam_over_six_steps(b1, b2):
    got = _updates(optim.normalized_adam(LR, GEOMETRY, b1=b1, b2=b2))
    grads = _gradients()
    for t, d in enumerate(_adam([g["e"] for g in grads], b1, b2)):
        rows = d / np.sqrt((d**2).mean(axis=-1, keepdims=True))  # embed dual map: every row to RMS 1
        np.testing.assert_allclose(got[t]["e"], -LR * 0.25 * rows, rtol=2e-5, atol=1e-7, err_msg=f"step {t + 1}")
    for t, d in enumerate(_adam([g["w"] for g in grads], b1, b2)):
        u, _, vt = np.linalg.svd(d, full_matrices=False)
        polar = np.sqrt(40 / 16) * u @ vt  # spectral dual map: sqrt(d_out/d_in)·UVᵀ (six_step: within 0.4%)
        np.testing.assert_allclose(got[t]["w"], -LR * 0.5 * polar, atol=4e-3 * LR * 0.5 * np.abs(polar).max(),
                                   err_msg=f"step {t + 1}")


def test_these_checks_tell_the_coefficients_apart():
    """The tolerances above are far tighter than what a changed coefficient moves."""
    a = _updates(optim.muon(LR, GEOMETRY, beta=0.95))[-1]["w"]
    b = _updates(optim.muon(LR, GEOMETRY, beta=0.9))[-1]["w"]
    assert np.abs(a - b).max() > 50 * 2e-4 * np.abs(a).max()
    a = _updates(optim.normalized_adam(LR, GEOMETRY, b2=0.99))[-1]["e"]
    b = _updates(optim.normalized_adam(LR, GEOMETRY, b2=0.999))[-1]["e"]
    assert np.abs(a - b).max() > 50 * 2e-5 * np.abs(a).max()
