"""Batched Newton–Schulz (issue 10): Scion, Muon and the normalized dual form run one Newton–Schulz call per
matrix shape over all of a GPT's leaves (Q, K, V and the attention output together; the MLP's up and its
transposed down, and the head where it is orthogonalized, together), and their updates equal the ones each
leaf gets on its own.

The per-leaf reference is the same optimizer built on a one-leaf geometry and run on that leaf alone, so
the two differ only in the batching. The calls are counted in the jaxpr: each Newton–Schulz step is three
matrix products (optim/newton_schulz.py), and nothing else in these updates multiplies matrices.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import optim
import zoo
from optim.newton_schulz import PRESETS
from optim.normalized import DEFAULT_NS_PRESET

# optimizer: (build kwargs, its Newton–Schulz preset, the roles it orthogonalizes)
OPTIMIZERS = {
    "scion": ({}, optim.DEFAULT_PRESET, ("hidden",)),
    "muon": ({}, "muon", ("hidden",)),
    "normalized_adam": ({"form": "dual"}, DEFAULT_NS_PRESET, ("hidden", "output")),
    "normalized_sgd": ({"form": "dual"}, DEFAULT_NS_PRESET, ("hidden", "output")),
}


@pytest.fixture(scope="module")
def gpt():
    """(geometry, params, gradients) of a width-64, 2-block GPT: Q, K, V, out 64×64, up 64×256, down 256×64,
    head 64×256; random gradients (only their shapes and values matter here)."""
    model = zoo.create("gpt-tiny", rngs=nnx.Rngs(0), width=64, depth=2)
    params = nnx.state(model, nnx.Param)
    rng = np.random.default_rng(0)
    grads = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32), params)
    return zoo.geometry(model), params, grads


def _leaves(tree):
    return jax.tree.leaves(tree)


def _count_matmuls(jaxpr) -> int:
    """dot_general equations in ``jaxpr`` and every jaxpr nested in it (jit, custom derivatives, ...)."""
    n = 0
    for eqn in jaxpr.eqns:
        n += eqn.primitive.name == "dot_general"
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    n += _count_matmuls(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    n += _count_matmuls(sub)
    return n


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_one_newton_schulz_call_per_shape_with_per_leaf_updates(gpt, name):
    geometry, params, grads = gpt
    kwargs, preset, roles = OPTIMIZERS[name]
    tx = optim.build(name, 0.1, geometry, **kwargs)
    got = jax.jit(tx.update)(grads, tx.init(params), params)[0]

    geos = jax.tree.leaves(geometry, is_leaf=optim.geometry.is_geometry)
    orthogonalized = [(tuple(sorted(p.shape[-2:])), p.shape[0]) for p, g in zip(_leaves(params), geos)
                      if g.role in roles]
    shapes = {shape for shape, _ in orthogonalized}
    assert len(orthogonalized) >= 4 and len(shapes) == 2  # 4-5 stacked leaves share 2 shapes: grouping matters
    steps = len(PRESETS[preset].coeffs)
    jaxpr = jax.make_jaxpr(tx.update)(grads, tx.init(params), params).jaxpr
    assert _count_matmuls(jaxpr) == 3 * steps * len(shapes)  # per leaf it would be 3·steps·len(orthogonalized)

    for (path, p), g, geo, u in zip(jax.tree_util.tree_flatten_with_path(params)[0], _leaves(grads), geos,
                                    _leaves(got)):
        if geo.role not in roles:  # not orthogonalized: nothing batched
            continue
        alone = optim.build(name, 0.1, [geo], **kwargs)
        want = alone.update([g], alone.init([p]), [p])[0][0]  # eagerly: no compile per leaf
        np.testing.assert_allclose(u, want, atol=1e-6, rtol=0, err_msg=jax.tree_util.keystr(path))
