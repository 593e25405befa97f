"""Initial norms against numpy SVD, multipliers against hand-derived closed forms, the modular norm."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import zoo
from zoo import nn

SMALL = {
    "gpt-tiny": dict(width=32, depth=2, heads=4, context=8),
    "resmlp-tiny": dict(width=48, depth=2, image_size=8),
    "resnet-tiny": dict(width=4, depth=2, image_size=8),
}


def _params(model):
    return [(".".join(map(str, path)), np.asarray(p[...]), p.get_metadata())
            for path, p in nnx.to_flat_state(nnx.state(model, nnx.Param))]


def _slices(w, meta):
    stack = sum(1 for a in meta["axes"] if a == "layers")
    return w.reshape((-1,) + w.shape[stack:]) if stack else w[None]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_initial_weights_on_their_norm(name):
    model = zoo.create(name, rngs=nnx.Rngs(1), **SMALL[name])
    for path, w, meta in _params(model):
        for s in _slices(w, meta):
            if meta["norm"] == "spectral":
                d_in, d_out = s.shape
                op = np.linalg.svd(s, compute_uv=False)[0] * math.sqrt(d_in / d_out)
                assert abs(op - 1) < 0.01, (path, op)
            elif meta["norm"] == "embed":
                rows = np.linalg.norm(s, axis=-1)
                np.testing.assert_allclose(rows, math.sqrt(s.shape[-1]), rtol=1e-4, err_msg=path)
            elif meta["norm"] == "conv":
                k = s.shape[0] * s.shape[1]
                c_in, c_out = s.shape[2:]
                for tap in s.reshape(k, c_in, c_out):
                    op = np.linalg.svd(tap, compute_uv=False)[0] * math.sqrt(c_in / c_out)
                    assert abs(op * k - 1) < 0.01, (path, op * k)
            else:
                pytest.fail(f"unexpected norm {meta['norm']} at {path}")


def test_linear_effective_map_has_unit_rms_operator_norm():
    """The map the layer applies (forward pass on the identity), not just its stored kernel."""
    for d_in, d_out in [(64, 16), (16, 64), (40, 40)]:
        layer = nn.Linear(d_in, d_out, rngs=nnx.Rngs(0))
        m = np.asarray(layer(jnp.eye(d_in)))
        op = np.linalg.svd(m, compute_uv=False)[0] * math.sqrt(d_in / d_out)
        assert abs(op - 1) < 0.01


def test_embed_and_conv_forward_use_their_weights():
    emb = nn.Embed(10, 6, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(np.asarray(emb(jnp.array([3, 7]))), np.asarray(emb.table[...])[[3, 7]])
    conv = nn.Conv2D(2, 3, 3, rngs=nnx.Rngs(0))
    x = np.zeros((1, 5, 5, 2), np.float32)
    x[0, 2, 2, 1] = 1.0  # a delta: the output is the kernel (flipped), channel 1 only
    y = np.asarray(conv(jnp.asarray(x)))[0]
    k = np.asarray(conv.kernel[...])
    np.testing.assert_allclose(y[1:4, 1:4], k[::-1, ::-1, 1, :], rtol=1e-5, atol=1e-6)


def _multipliers(model):
    return {path: meta["multiplier"] for path, _, meta in _params(model)}


def test_multipliers_of_a_hand_built_composite():
    """c_k by hand from the composition rules of Large et al. 2024, §3.

    root = Sequential(a, relu, Parallel(b, c), Scaled(0.5, Add), d), masses a=1, b=2, c=1, d=3
    total mass 7; sensitivities: relu 1, Parallel 2, Scaled-add 0.5, d 1.
      d: 3/7
      Scaled(0.5, add): mass 0 -> 0
      Parallel (mass 3): 3/7 / (0.5 * 1) = 6/7 -> b: 6/7 * 2/3 = 4/7, c: 6/7 * 1/3 = 2/7
      a: 1/7 / (1 * 2 * 0.5 * 1) = 1/7
    """
    r = nnx.Rngs(0)
    root = nn.Sequential(a=nn.Linear(4, 4, mass=1, rngs=r), relu=nn.ReLU(),
                         pair=nn.Parallel(b=nn.Linear(4, 4, mass=2, rngs=r), c=nn.Linear(4, 4, mass=1, rngs=r)),
                         add=nn.Scaled(0.5, nn.Add()), d=nn.Linear(4, 4, mass=3, rngs=r))
    nn.assign_geometry(root)
    c = _multipliers(root)
    expect = {"a.kernel": 1 / 7, "pair.b.kernel": 4 / 7, "pair.c.kernel": 2 / 7, "d.kernel": 3 / 7}
    assert c.keys() == expect.keys()
    for k in expect:
        assert c[k] == pytest.approx(expect[k], rel=1e-12), k
    assert root.mass() == 7 and root.sensitivity() == pytest.approx(1.0)
    # the atoms' absolute masses add up to the root's
    assert sum(meta["mass"] for _, _, meta in _params(root)) == pytest.approx(7)


def test_residual_multipliers_and_sensitivity():
    """Residual(depth L, mass M) of one branch Linear->Linear (masses 1, 1) inside Sequential(in, stack, out).

    masses in 1, stack 2, out 1 (total 4): stack target 2/4; branch gets the
    whole stack target (one branch), each linear half of it: 1/4. in, out: 1/4.
    """
    r = nnx.Rngs(0)
    stack = nn.Residual(lambda rr: {"f": nn.Sequential(nn.Linear(4, 4, rngs=rr), nn.Linear(4, 4, rngs=rr))},
                        depth=5, mass=2, rngs=r)
    root = nn.Sequential(i=nn.Linear(4, 4, rngs=r), s=stack, o=nn.Linear(4, 4, rngs=r))
    nn.assign_geometry(root)
    for path, c in _multipliers(root).items():
        assert c == pytest.approx(0.25), path
    assert stack.sensitivity() == 1.0
    x = jax.random.normal(jax.random.key(0), (3, 4))
    # scan equals an explicit loop of (1 - 1/L) x + (1/L) f_l(x)
    kernels = [np.asarray(stack.layers.f.layer0.kernel[...]), np.asarray(stack.layers.f.layer1.kernel[...])]
    h = np.asarray(x)
    for l in range(5):
        h = (1 - 1 / 5) * h + (1 / 5) * (h @ kernels[0][l] @ kernels[1][l])
    np.testing.assert_allclose(np.asarray(stack(x)), h, rtol=1e-5, atol=1e-6)


def test_residual_rejects_branch_of_wrong_sensitivity():
    with pytest.raises(ValueError, match="sensitivity 1"):
        nn.Residual(lambda rr: (nn.Scaled(2.0, nn.Linear(4, 4, rngs=rr)),), depth=2, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("depth", [2, 8])
def test_gpt_multipliers_match_closed_form_at_any_depth(depth):
    model = zoo.create("gpt-tiny", rngs=nnx.Rngs(0), width=32, depth=depth, context=8)
    c = _multipliers(model)
    expect = {
        "embed.lookup.token.table": 1 / 7, "embed.lookup.position.table": 1 / 7, "logits.linear.kernel": 1 / 7,
        "blocks.layers.attn.out.kernel": 5 / 21, "blocks.layers.mlp.up.kernel": 5 / 21,
        "blocks.layers.mlp.down.kernel": 5 / 21,
        "blocks.layers.attn.qkv.q.linear.kernel": 15 / 21, "blocks.layers.attn.qkv.k.linear.kernel": 15 / 21,
        "blocks.layers.attn.qkv.v.linear.kernel": 15 / 21,
    }
    assert c.keys() == expect.keys()
    for k in expect:
        assert c[k] == pytest.approx(expect[k], rel=1e-9), k


def test_resmlp_multipliers_match_closed_form():
    model = zoo.create("resmlp-tiny", rngs=nnx.Rngs(0), width=16, depth=3, image_size=8)
    c = _multipliers(model)
    assert c["input.linear.kernel"] == pytest.approx(1 / 3)
    assert c["logits.linear.kernel"] == pytest.approx(1 / 3)
    assert c["blocks.layers.mlp.up.kernel"] == pytest.approx(1 / 6)
    assert c["blocks.layers.mlp.down.kernel"] == pytest.approx(1 / 6)


def test_modular_norm_against_numpy():
    """max_k ||w_k|| / c_k computed independently with numpy SVD on perturbed weights."""
    model = zoo.create("gpt-tiny", rngs=nnx.Rngs(0), width=32, depth=2, context=8)
    params = nnx.state(model, nnx.Param)
    rng = np.random.default_rng(0)
    tree = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape), jnp.float32), params)
    expect = 0.0
    for (path, _, meta), w in zip(_params(model), jax.tree.leaves(tree)):
        w = np.asarray(w)
        for s in _slices(w, meta):
            if meta["norm"] == "spectral":
                n = np.linalg.svd(s, compute_uv=False)[0] * math.sqrt(s.shape[0] / s.shape[1])
            else:
                n = np.sqrt((s**2).mean(axis=-1)).max()
            expect = max(expect, n / meta["multiplier"])
    got = float(zoo.modular_norm(zoo.geometry(model), tree))
    assert got == pytest.approx(expect, rel=1e-4)
    # freshly initialized: every atom at norm 1, so the modular norm is 1 / min c_k = 7
    assert float(zoo.modular_norm(zoo.geometry(model), params)) == pytest.approx(7.0, rel=1e-4)


def test_modular_norm_rejects_mismatched_tree():
    model = zoo.create("gpt-tiny", rngs=nnx.Rngs(0), width=32, depth=2, context=8)
    params = jax.tree.leaves(nnx.state(model, nnx.Param))
    with pytest.raises(ValueError, match="geometry tree has 9 leaves but the arrays have 8"):
        zoo.modular_norm(zoo.geometry(model), params[:-1])


def test_gain_and_bias_atoms():
    """Gains start at RMS 1 (ones), biases at 0; both are RMS-norm atoms Scion gives the Bias LMO."""
    gain, bias = nn.Gain(6, rngs=nnx.Rngs(0)), nn.Bias(6, rngs=nnx.Rngs(0))
    x = jnp.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(np.asarray(gain(x)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(bias(x)), np.asarray(x))
    gain.scale[...] = jnp.full((6,), 2.0)
    bias.offset[...] = jnp.arange(6.0)
    np.testing.assert_allclose(np.asarray(gain(x)), 2 * np.asarray(x))
    np.testing.assert_allclose(np.asarray(bias(x)), np.asarray(x) + np.arange(6.0))
    model = nn.assign_geometry(nn.Sequential(linear=nn.Linear(6, 6, rngs=nnx.Rngs(0)), gain=gain, bias=bias))
    geo = zoo.geometry(model)
    assert (geo["gain"]["scale"].role, geo["gain"]["scale"].norm) == ("gain", "rms")
    assert (geo["bias"]["offset"].role, geo["bias"]["offset"].norm) == ("bias", "rms")
    assert geo["bias"]["offset"].multiplier == pytest.approx(1 / 3)  # three atoms of mass 1 in a row
