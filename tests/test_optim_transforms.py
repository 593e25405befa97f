"""The optimizers on a hand-built parameter and geometry tree (every role, stacked axes).

Checks wiring against independent numpy formulas, optax composition
(schedules, clipping, inject_hyperparams), plain-array state that Orbax
round-trips, dtypes, and the error messages for bad input.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import optim
from optim.geometry import Geometry


def geo(role, norm, fan_in, fan_out, multiplier, axes):
    return Geometry(role, norm, fan_in, fan_out, 1.0, 1.0, multiplier, axes)


GEOMETRY = {
    "embed": geo("embedding", "embed", 50, 16, 0.25, ("vocab", "embed")),
    "blocks": {
        "w": geo("hidden", "spectral", 16, 32, 0.5, ("layers", "embed", "mlp")),
        "gain": geo("gain", "rms", 16, 16, 0.5, ("layers", "embed")),
    },
    "conv": geo("conv", "conv", 4, 8, 0.125, (None, None, "conv_in", "conv_out")),
    "head": geo("output", "spectral", 16, 10, 0.25, ("embed", "vocab")),
    "bias": geo("bias", "rms", 10, 10, 0.25, ("vocab",)),
}
SHAPES = {"embed": (50, 16), "blocks": {"w": (2, 16, 32), "gain": (2, 16)}, "conv": (3, 3, 4, 8), "head": (16, 10), "bias": (10,)}
NAMES = sorted(optim.OPTIMIZERS)


def tree(seed, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s), dtype), SHAPES, is_leaf=lambda s: isinstance(s, tuple))


def np_polar(m):
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64), full_matrices=False)
    return u @ vt


def sv(m):
    return np.linalg.svd(np.asarray(m, np.float64), compute_uv=False)


def test_scion_step_matches_numpy_per_role():
    params, g = tree(0), tree(1)
    radius = {"embedding": 2.0, "hidden": 3.0, "conv": 5.0, "output": 7.0, "gain": 0.5, "bias": 0.25}
    lr = 0.1
    tx = optim.scion(lr, GEOMETRY, momentum=1.0, radius=radius, ns_coeffs="convergent")
    u, _ = jax.jit(tx.update)(g, tx.init(params), params)
    g = jax.tree.map(lambda x: np.asarray(x, np.float64), g)
    e = g["embed"]
    np.testing.assert_allclose(u["embed"], -lr * 2.0 * math.sqrt(16) * e / np.linalg.norm(e, axis=1, keepdims=True), rtol=1e-5)
    for i in range(2):
        np.testing.assert_allclose(u["blocks"]["w"][i], -lr * 3.0 * math.sqrt(32 / 16) * np_polar(g["blocks"]["w"][i]), atol=1e-5)
        gi = g["blocks"]["gain"][i]
        np.testing.assert_allclose(u["blocks"]["gain"][i], -lr * 0.5 * gi / np.sqrt(np.mean(gi**2)), rtol=1e-5)
    flat = g["conv"].transpose(3, 2, 0, 1).reshape(8, 36)  # (c_out, c_in k k)
    want = (np_polar(flat) * math.sqrt(8 / 4) / 9).reshape(8, 4, 3, 3).transpose(2, 3, 1, 0)
    np.testing.assert_allclose(u["conv"], -lr * 5.0 * want, atol=1e-5)
    np.testing.assert_allclose(u["head"], -lr * 7.0 * np.sign(g["head"]) / 16, rtol=1e-6)
    np.testing.assert_allclose(u["bias"], -lr * 0.25 * g["bias"] / np.sqrt(np.mean(g["bias"] ** 2)), rtol=1e-5)


def test_scion_momentum_is_an_average_and_constrained_adds_decay():
    params, g1, g2 = tree(0), tree(1), tree(2)
    alpha, lr = 0.25, 0.05
    tx = optim.scion(lr, GEOMETRY, momentum=alpha)
    txc = optim.scion(lr, GEOMETRY, momentum=alpha, constrained=True)
    s, sc = tx.init(params), txc.init(params)
    _, s = tx.update(g1, s, params)
    u, s = tx.update(g2, s, params)
    _, sc = txc.update(g1, sc, params)
    uc, sc = txc.update(g2, sc, params)
    want = jax.tree.map(lambda a, b: (1 - alpha) * alpha * a + alpha * b, g1, g2)
    jax.tree.map(lambda m, w: np.testing.assert_allclose(m, w, rtol=1e-6, atol=1e-7), s[0].momentum, want)
    # SCG: x <- (1 - lr) x - lr rho lmo(d), i.e. the uSCG update minus lr * x
    jax.tree.map(lambda a, b, p: np.testing.assert_allclose(a - b, -lr * p, rtol=1e-5, atol=1e-7), uc, u, params)


def test_scion_schedule_and_clipping_compose():
    params, g = tree(0), tree(1)
    sched = optax.linear_schedule(1.0, 0.5, 10)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optim.scion(sched, GEOMETRY, momentum=1.0))
    state = tx.init(params)
    step = jax.jit(tx.update)
    u0, state = step(g, state, params)
    u1, state = step(g, state, params)
    np.testing.assert_allclose(u1["head"] / u0["head"], sched(1) / sched(0), rtol=1e-6)
    np.testing.assert_allclose(np.abs(u0["head"]), 10.0 / 16, rtol=1e-6)  # radius 10, sign/d_in, lr 1


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_scales_the_update(name):
    params, g = tree(0), tree(1)
    tx = optax.inject_hyperparams(optim.OPTIMIZERS[name])(learning_rate=0.01, geometry=GEOMETRY)
    state = tx.init(params)
    u1, _ = jax.jit(tx.update)(g, state, params)
    state.hyperparams["learning_rate"] = jnp.asarray(0.02)
    u2, _ = jax.jit(tx.update)(g, state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, 2 * a, rtol=1e-5, atol=1e-8), u1, u2)


@pytest.mark.parametrize("name", NAMES)
def test_state_is_plain_arrays_and_round_trips_through_orbax(name, tmp_path):
    params, g1, g2 = tree(0), tree(1), tree(2)
    tx = optim.build(name, 0.01, GEOMETRY)
    step = jax.jit(tx.update)
    _, state = step(g1, tx.init(params), params)
    leaves = jax.tree.leaves(state)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(tmp_path / "opt", state)
    ckpt.wait_until_finished()
    restored = ckpt.restore(tmp_path / "opt", state)
    want, _ = step(g2, state, params)
    got, _ = step(g2, restored, params)
    jax.tree.map(np.testing.assert_array_equal, got, want)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_parameters(name):
    params, g = tree(0, jnp.bfloat16), tree(1, jnp.bfloat16)
    tx = optim.build(name, 0.01, GEOMETRY)
    u, state = jax.jit(tx.update)(g, tx.init(params), params)
    for x in jax.tree.leaves(u):
        assert x.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(x)))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))


def test_normalized_dual_gives_every_atom_norm_lr_times_multiplier():
    params, g = tree(0), tree(1)
    lr = 0.3
    tx = optim.normalized_sgd(lr, GEOMETRY)
    u, _ = jax.jit(tx.update)(g, tx.init(params), params)
    u = jax.tree.map(lambda x: np.asarray(x, np.float64), u)
    flat_u = jax.tree.leaves(u)
    flat_geo = jax.tree.leaves(GEOMETRY, is_leaf=optim.geometry.is_geometry)
    for x, gm in zip(flat_u, flat_geo):
        target = lr * gm.multiplier
        if gm.norm == "spectral":  # sqrt(d_in/d_out) sigma_max, per stacked slice
            for m in x.reshape(-1, *x.shape[-2:]):
                assert abs(math.sqrt(m.shape[0] / m.shape[1]) * sv(m).max() / target - 1) < 0.01
        elif gm.norm == "conv":  # k^2 max_tap sqrt(c_in/c_out) sigma_max(tap): every tap saturates
            taps = [9 * math.sqrt(4 / 8) * sv(x[i, j]).max() for i in range(3) for j in range(3)]
            np.testing.assert_allclose(np.asarray(taps) / target, 1.0, atol=0.01)
        else:  # embed: every row of RMS 1 (zero rows aside); rms: RMS 1
            np.testing.assert_allclose(np.sqrt(np.mean(x**2, axis=-1)) / target, 1.0, rtol=1e-5)


def test_normalized_scaled_form_keeps_direction_and_power_state():
    params, g = tree(0), tree(1)
    lr = 0.2
    tx = optim.normalized(optax.identity(), GEOMETRY, lr, form="scaled")
    state = tx.init(params)
    vectors0 = state[1].vectors
    assert [v.shape for v in vectors0] == [(2, 32), (3, 3, 8), (10,)]  # blocks.w, conv, head (flattened order)
    step = jax.jit(tx.update)
    for _ in range(30):
        u, state = step(g, state, params)
    assert all(not np.allclose(a, b) for a, b in zip(vectors0, state[1].vectors))
    for x, gx, gm in zip(jax.tree.leaves(u), jax.tree.leaves(g), jax.tree.leaves(GEOMETRY, is_leaf=optim.geometry.is_geometry)):
        x, gx = np.asarray(x, np.float64), np.asarray(gx, np.float64)
        ratio = x / gx  # a per-atom positive-times-(-1) scalar: the direction is kept
        lead = ratio.reshape(ratio.shape[: gm.stack_ndim] + (-1,))
        np.testing.assert_allclose(lead / lead[..., :1], 1.0, rtol=1e-4)
        assert (lead < 0).all()
        norm = np.asarray(gm.atom_norm.value(jnp.asarray(x)))
        np.testing.assert_allclose(norm / (lr * gm.multiplier), 1.0, rtol=0.02)


def test_normalized_weight_decay_is_per_atom_and_decoupled():
    params, g = tree(0), tree(1)
    lr, lam = 0.1, 0.5
    plain = optim.normalized_adam(lr, GEOMETRY)
    decayed = optim.normalized_adam(lr, GEOMETRY, weight_decay=lam)
    u0, _ = jax.jit(plain.update)(g, plain.init(params), params)
    u1, _ = jax.jit(decayed.update)(g, decayed.init(params), params)
    flat_geo = jax.tree.leaves(GEOMETRY, is_leaf=optim.geometry.is_geometry)
    for a, b, p, gm in zip(jax.tree.leaves(u0), jax.tree.leaves(u1), jax.tree.leaves(params), flat_geo):
        np.testing.assert_allclose(b - a, -lr * gm.multiplier * lam * np.asarray(p), rtol=1e-4, atol=1e-7)


def test_zero_multiplier_and_zero_gradient_give_zero_update():
    params = tree(0)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for name in NAMES:
        tx = optim.build(name, 0.1, GEOMETRY, **({"weight_decay": 0.0} if name == "adamw" else {}))
        u, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
        for x in jax.tree.leaves(u):
            assert not np.isnan(np.asarray(x)).any()
            np.testing.assert_array_equal(x, 0.0)
    massless = jax.tree.map(lambda gm: Geometry(gm.role, gm.norm, gm.fan_in, gm.fan_out, 0.0, 1.0, 0.0, gm.axes), GEOMETRY, is_leaf=optim.geometry.is_geometry)
    tx = optim.normalized_adam(0.1, massless)
    u, _ = jax.jit(tx.update)(tree(1), tx.init(params), params)
    assert all(not np.asarray(x).any() for x in jax.tree.leaves(u))


def test_muon_routes_by_role_not_ndim():
    params, g = tree(0), tree(1)
    lr = 0.02
    tx = optim.muon(lr, GEOMETRY, adam_learning_rate=0.003)
    u, _ = jax.jit(tx.update)(g, tx.init(params), params)
    # hidden (3-D, stacked) and conv (4-D): Jordan's quintic singular values times max(1, d_out/d_in)^0.5
    for m in np.asarray(u["blocks"]["w"]):
        s = sv(m) / (lr * math.sqrt(32 / 16))
        assert 0.67 <= s.min() and s.max() <= 1.21
    s = sv(np.asarray(u["conv"]).reshape(36, 8)) / lr
    assert 0.67 <= s.min() and s.max() <= 1.21
    # embedding and head (2-D) and gains/biases: AdamW, whose first step is -lr * g / (|g| + eps)
    for key in ("embed", "head", "bias"):
        np.testing.assert_allclose(u[key], -0.003 * np.sign(np.asarray(g[key])), rtol=1e-4)
    np.testing.assert_allclose(u["blocks"]["gain"], -0.003 * np.sign(np.asarray(g["blocks"]["gain"])), rtol=1e-4)


def test_adamw_is_optax_adamw():
    params, g = tree(0), tree(1)
    ours, ref = optim.adamw(1e-3, GEOMETRY, weight_decay=0.1), optax.adamw(1e-3, weight_decay=0.1)
    a, _ = jax.jit(ours.update)(g, ours.init(params), params)
    b, _ = jax.jit(ref.update)(g, ref.init(params), params)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_scion_init_on_the_boundary():
    params = tree(0)
    radius = {"embedding": 2.0, "hidden": 3.0, "conv": 5.0, "output": 7.0}
    w = optim.scion_init(params, GEOMETRY, jax.random.key(0), radius=radius)
    w = jax.tree.map(lambda x: np.asarray(x, np.float64), w)
    np.testing.assert_allclose(np.linalg.norm(w["embed"], axis=1), 2.0 * math.sqrt(16), rtol=1e-5)
    for m in w["blocks"]["w"]:
        np.testing.assert_allclose(sv(m), 3.0 * math.sqrt(32 / 16), rtol=1e-5)
    assert not np.allclose(w["blocks"]["w"][0], w["blocks"]["w"][1])
    np.testing.assert_allclose(sv(w["conv"].reshape(36, 8)), 5.0 * math.sqrt(8 / 4) / 9, rtol=1e-5)
    np.testing.assert_allclose(np.abs(w["head"]), 7.0 / 16, rtol=1e-6)
    np.testing.assert_array_equal(w["blocks"]["gain"], params["blocks"]["gain"])
    np.testing.assert_array_equal(w["bias"], params["bias"])


def test_build_unknown_name():
    with pytest.raises(ValueError, match=r"unknown optimizer 'lion'; choose one of adamw, muon, normalized_adam, normalized_sgd, scion$"):
        optim.build("lion", 0.1, GEOMETRY)


def test_geometry_that_does_not_match_the_parameters():
    params = tree(0)
    short = dict(GEOMETRY)
    del short["bias"]
    for name in ("scion", "normalized_adam", "muon"):
        with pytest.raises(ValueError, match=r"geometry tree has 5 leaves but the params have 6; build the geometry with zoo.geometry\(model\)"):
            optim.build(name, 0.1, short).init(params)
    swapped = dict(GEOMETRY, head=GEOMETRY["embed"])
    tx = optim.scion(0.1, swapped)
    with pytest.raises(ValueError, match=r"params leaf \['head'\] has shape \(16, 10\) but its geometry \(role 'embedding', norm 'embed'\) expects \(50, 16\)"):
        tx.init(params)
    unstacked = dict(GEOMETRY, blocks=dict(GEOMETRY["blocks"], w=geo("hidden", "spectral", 16, 32, 0.5, ("embed", "mlp"))))
    with pytest.raises(ValueError, match=r"updates leaf \['blocks'\]\['w'\] has shape \(2, 16, 32\) but its geometry .* expects \(16, 32\)"):
        optim.scale_by_modular_norm(unstacked).update(params, None)
    with pytest.raises(TypeError, match=r"geometry tree holds a str, not an optim.geometry.Geometry; pass zoo.geometry\(model\)"):
        optim.scion(0.1, {"a": "hidden"})


def test_other_bad_arguments():
    params, g = tree(0), tree(1)
    with pytest.raises(ValueError, match=r"radius given for unknown roles \['head'\]; roles are"):
        optim.scion(0.1, GEOMETRY, radius={"head": 3.0})
    with pytest.raises(ValueError, match=r"unknown LMO 'spectal'; choose one of"):
        optim.scion(0.1, GEOMETRY, lmo={"hidden": "spectal"})
    for name in ("scion", "normalized_adam", "muon"):
        with pytest.raises(ValueError, match=r"unknown Newton–Schulz preset 'fast'; choose one of \['convergent'"):
            optim.build(name, 0.1, GEOMETRY, ns_coeffs="fast")
    with pytest.raises(ValueError, match=r"unknown normalization form 'spectral'; choose one of \('dual', 'scaled'\)"):
        optim.normalized_adam(0.1, GEOMETRY, form="spectral")
    tx = optim.scion(0.1, GEOMETRY, constrained=True)
    with pytest.raises(ValueError, match=r"scion\(constrained=True\) needs the parameters: call tx.update\(grads, state, params\)"):
        tx.update(g, tx.init(params))
    tx = optim.normalized_adam(0.1, GEOMETRY, weight_decay=0.1)
    with pytest.raises(ValueError, match=r"weight_decay needs the parameters"):
        tx.update(g, tx.init(params))
    with pytest.raises(ValueError, match=r"the 'spectral' LMO needs an array of layout \(\.\.\., d_in, d_out\); got shape \(10,\)"):
        bad = dict(GEOMETRY, bias=geo("bias", "rms", 10, 10, 0.25, ("vocab",)))
        tx = optim.scion(0.1, bad, lmo={"bias": "spectral"})
        tx.update(g, tx.init(params))
