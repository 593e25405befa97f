"""The ways of computing one GPT (layers scanned or unrolled, Q/K/V fused or separate, attention explicit or
through jax.nn.dot_product_attention) are the same function: equal outputs, gradients and 20-step training losses."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import optim
import zoo
from zoo import nn
from zoo.train.step import make_train_step

BASE = dict(layer_loop="scan", fused_qkv=False, attention="xla")  # the reference way
VARIANTS = {
    "unrolled": dict(layer_loop="unroll"),
    "fused": dict(fused_qkv=True),
    "explicit-attention": dict(attention="explicit"),
    "all-three": dict(layer_loop="unroll", fused_qkv=True, attention="explicit"),
}


def _losses(steps: int = 20, **fields):
    cfg = dataclasses.replace(zoo.get_config("gpt-tiny").tiny(), **{**BASE, **fields})
    model = zoo.build(cfg, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    tx = optim.build("normalized_adam", 0.05, zoo.geometry(model))
    step = jax.jit(make_train_step(graphdef, tx))
    opt_state = tx.init(params)
    batch = cfg.example_batch(4, jax.random.key(1))
    losses = []
    for _ in range(steps):
        params, opt_state, metrics = step(params, opt_state, batch)
        losses.append(float(metrics["loss"]))
    return np.array(losses)


@pytest.fixture(scope="module")
def reference():
    return _losses()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_trains_like_the_reference(reference, variant):
    got = _losses(**VARIANTS[variant])
    assert reference[-1] < reference[0] - 0.5  # it trains, so the comparison is not of constants
    np.testing.assert_allclose(got, reference, atol=1e-5, rtol=0)


def test_fused_parallel_equals_parallel_and_keeps_each_atom():
    rngs = nnx.Rngs(3)

    def branches():
        return dict(q=nn.Sequential(linear=nn.Linear(8, 12, rngs=rngs), act=nn.GELU()),
                    k=nn.Linear(8, 4, rngs=rngs), v=nn.Linear(8, 8, rngs=rngs))

    plain = nn.assign_geometry(nn.Parallel(**branches()))
    fused = nn.assign_geometry(nn.FusedParallel(**branches()))
    nnx.update(fused, nnx.state(plain))  # same weights
    assert zoo.geometry(fused) == zoo.geometry(plain)  # same atoms, multipliers and shapes
    x = jax.random.normal(jax.random.key(0), (2, 5, 8))
    for a, b in zip(plain(x), fused(x)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-6)

    def grads(module):
        return nnx.grad(lambda m: sum(jnp.sum(jnp.sin(y)) for y in m(x)))(module)

    for a, b in zip(jax.tree.leaves(grads(plain)), jax.tree.leaves(grads(fused))):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_fused_parallel_rejects_branches_it_cannot_fuse():
    rngs = nnx.Rngs(0)
    with pytest.raises(TypeError, match="must be a Linear or a Sequential that starts with one, not GELU"):
        nn.FusedParallel(a=nn.Linear(4, 4, rngs=rngs), b=nn.GELU())
    with pytest.raises(ValueError, match=r"one input width and dtype, got widths \[4, 6\]"):
        nn.FusedParallel(a=nn.Linear(4, 4, rngs=rngs), b=nn.Linear(6, 4, rngs=rngs))
