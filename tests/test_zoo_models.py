"""Registry-generated model tests: every registered preset, and the user-registered ones of
examples/my_models.py, at the tiny variant its config supplies (``cfg.tiny()``) and at one more depth."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

import zoo
from examples import my_models  # noqa: F401  (registers bigram-mlp and pixel-mlp, as a user would)
from optim.geometry import Geometry, is_geometry


def _cases():
    """One case per distinct tiny config (presets of a family often shrink to the same one), at its own
    depth and one deeper."""
    seen = {}
    for name in zoo.list_models():
        tiny = zoo.get_config(name).tiny()
        for cfg in (tiny, dataclasses.replace(tiny, depth=tiny.depth + 1)):
            seen.setdefault(cfg, name)
    return [pytest.param(cfg, id=f"{name}-w{cfg.width}-d{cfg.depth}") for cfg, name in seen.items()]


@pytest.mark.parametrize("cfg", _cases())
def test_forward_backward_and_geometry(cfg):
    model = zoo.build(cfg, rngs=nnx.Rngs(0))
    batch = cfg.example_batch(2, jax.random.key(0))
    graphdef, params = nnx.split(model, nnx.Param)
    out = jax.eval_shape(lambda p: nnx.merge(graphdef, p)(model.inputs(batch)), params)
    assert out.shape == ((2, cfg.context, cfg.vocab) if cfg.modality == "text" else (2, cfg.classes))
    loss_and_grad = jax.value_and_grad(lambda p: nnx.merge(graphdef, p).loss(batch), has_aux=True)
    (loss, metrics), grads = jax.jit(loss_and_grad)(params)
    assert np.isfinite(float(loss)) and "loss" in metrics
    for path, g in nnx.to_flat_state(grads):
        g = np.asarray(g.get_value() if isinstance(g, nnx.Variable) else g)
        assert np.isfinite(g).all() and np.abs(g).max() > 0, f"{path}: no gradient reaches it"

    geo = zoo.geometry(model)
    records = jax.tree.leaves(geo, is_leaf=is_geometry)
    assert len(records) == len(jax.tree.leaves(params)) and all(isinstance(r, Geometry) for r in records)
    flat_params, flat_geo = dict(nnx.to_flat_state(params)), dict(nnx.to_flat_state(geo))
    assert set(flat_params) == set(flat_geo)
    for path, p in flat_params.items():
        g = flat_geo[path]
        g = g.get_value() if isinstance(g, nnx.Variable) else g
        assert len(g.axes) == p.ndim, path
        assert g.multiplier > 0 and g.mass > 0, path
        if g.stack_ndim:
            assert p.shape[0] == cfg.depth, path


@pytest.mark.parametrize("name", zoo.list_models())
def test_preset_builds_abstractly(name):
    model = nnx.eval_shape(lambda: zoo.create(name, rngs=nnx.Rngs(0)))
    records = jax.tree.leaves(zoo.geometry(model), is_leaf=is_geometry)
    assert len(records) == len(jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_gpt_small_parameter_count():
    """GPT-2-small dimensions: 12 x 12 x 768^2 in the blocks plus embeddings and head."""
    from zoo.summary import param_count

    cfg = zoo.get_config("gpt-small")
    assert (cfg.width, cfg.depth, cfg.heads, cfg.context) == (768, 12, 12, 1024)
    model = nnx.eval_shape(lambda: zoo.create("gpt-small", rngs=nnx.Rngs(0)))
    blocks = sum(x.size for x in jax.tree.leaves(nnx.state(model.blocks, nnx.Param)))
    assert blocks == 12 * 12 * 768**2  # 84,934,656
    assert param_count(model) == blocks + (256 + 1024) * 768 + 768 * 256
    # GPT-2's tokenizer vocabulary, untied head: 85M + 2 x 38.6M + positions
    big = nnx.eval_shape(lambda: zoo.create("gpt-small", rngs=nnx.Rngs(0), vocab=50257))
    assert param_count(big) == blocks + 2 * 50257 * 768 + 1024 * 768
