"""Registry-generated model tests: every preset at two widths and two depths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import zoo
from optim.geometry import Geometry, is_geometry

# Small sizes per family so every registered preset runs quickly on CPU; the
# presets' own sizes are checked abstractly (eval_shape) below.
SHRINK = {"gpt": dict(context=16), "resmlp": dict(image_size=8), "resnet": dict(image_size=8)}
WIDTHS = {"gpt": (24, 48), "resmlp": (16, 32), "resnet": (4, 8)}


def _small(name, width, depth):
    cfg = zoo.get_config(name)
    overrides = dict(SHRINK[cfg.family], width=width, depth=depth)
    if cfg.family == "gpt":
        overrides["heads"] = 4 if width % 4 == 0 else 1
    return overrides


def _cases():
    """One case per distinct shrunken config (presets of a family often shrink to the same one)."""
    seen = {}
    for name in zoo.list_models():
        for width in WIDTHS[zoo.get_config(name).family]:
            for depth in (1, 3):
                overrides = _small(name, width, depth)
                seen.setdefault(zoo.get_config(name, **overrides), (name, overrides))
    return [pytest.param(name, overrides, id=f"{name}-w{overrides['width']}-d{overrides['depth']}")
            for name, overrides in seen.values()]


@pytest.mark.parametrize("name,overrides", _cases())
def test_forward_shapes_and_geometry(name, overrides):
    depth = overrides["depth"]
    model = zoo.create(name, rngs=nnx.Rngs(0), **overrides)
    cfg = zoo.get_config(name, **overrides)
    batch = cfg.example_batch(2, jax.random.key(0))
    out = nnx.jit(lambda m, x: m(x))(model, model.inputs(batch))
    if cfg.family == "gpt":
        assert out.shape == (2, cfg.context, cfg.vocab)
    else:
        assert out.shape == (2, cfg.classes)
    assert bool(jnp.all(jnp.isfinite(out)))
    loss, metrics = model.loss(batch)
    assert np.isfinite(float(loss)) and "loss" in metrics

    params = nnx.state(model, nnx.Param)
    geo = zoo.geometry(model)
    leaves = jax.tree.leaves(params)
    records = jax.tree.leaves(geo, is_leaf=is_geometry)
    # one record per parameter, same tree structure, stacked axes match depth
    assert len(records) == len(leaves) and all(isinstance(r, Geometry) for r in records)
    flat_params = dict(nnx.to_flat_state(params))
    flat_geo = dict(nnx.to_flat_state(geo))
    assert set(flat_params) == set(flat_geo)
    for path, p in flat_params.items():
        g = flat_geo[path]
        g = g.get_value() if isinstance(g, nnx.Variable) else g
        assert len(g.axes) == p.ndim, path
        assert g.multiplier > 0 and g.mass > 0, path
        if g.stack_ndim:
            assert p.shape[0] == depth, path


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
