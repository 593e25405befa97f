"""Mixed precision: f32 parameters, a configurable compute dtype, f32 logits and loss, and optimizer
state stored in bfloat16 (``mu_dtype``), Scion's memory-light mode included."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import optim
import zoo
from zoo.benchmarks.optimizer_step import memory_figures, tree_bytes
from zoo.cli import main
from zoo.models.base import compute_dtype

TINY = zoo.get_config("gpt-tiny").tiny()
SMALL = {"width": 16, "depth": 1, "heads": 2, "context": 8, "vocab": 64}
"""The optimizer tests' GPT (every role but conv: embeddings, hidden, output)."""
STEPS = 3
BF16_ROUNDING = 2.0**-8
"""bfloat16 keeps 8 significant bits, so storing a value rounds it by at most 2⁻⁸ of itself (relative)."""


def test_auto_compute_dtype_is_bf16_on_accelerators_and_f32_on_cpu(monkeypatch):
    assert compute_dtype("auto") == jnp.float32  # the tests run on CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert compute_dtype("auto") == jnp.bfloat16
    assert compute_dtype("float32") == jnp.float32
    with pytest.raises(ValueError, match="model dtype 'bf16' is unknown; choose one of auto, float32"):
        compute_dtype("bf16")


def test_bf16_compute_keeps_parameters_logits_and_loss_in_f32():
    f32 = zoo.build(dataclasses.replace(TINY, dtype="float32"), rngs=nnx.Rngs(0))
    abstract = nnx.eval_shape(lambda: zoo.build(dataclasses.replace(TINY, dtype="bfloat16"), rngs=nnx.Rngs(0)))
    graphdef, stored = nnx.split(abstract)
    assert {x.dtype for x in jax.tree.leaves(stored)} == {jnp.dtype(jnp.float32)}  # stored in f32 whatever the compute
    bf16 = nnx.merge(graphdef, nnx.state(f32))  # the bf16-compute model on the f32 model's weights
    batch = TINY.example_batch(4, jax.random.key(1))

    @nnx.jit  # one compilation: op-by-op dispatch is the slower way on a busy CPU
    def run(f32, bf16, batch):
        stages = bf16.activations(bf16.inputs(batch))
        return stages[f"blocks.{TINY.depth - 1}"], stages["logits"], bf16.loss(batch), f32.loss(batch)[0]

    last_block, logits, (loss, metrics), reference = run(f32, bf16, batch)
    assert last_block.dtype == jnp.bfloat16 and logits.dtype == jnp.float32  # bf16 activations, f32 logits
    assert loss.dtype == jnp.float32 and metrics["loss"].dtype == jnp.float32
    assert float(loss) != float(reference)  # it did compute in bf16 ...
    # ... within a few bf16 roundings (2^-8 each, relative) compounded over the blocks: 2e-2 relative
    assert float(loss) == pytest.approx(float(reference), rel=2e-2)
    # (gradients: f32 like the parameters they differentiate, and finite or the run below would stop, Diverged)


def test_a_state_dtype_that_is_not_a_float_is_one_clear_error():
    with pytest.raises(ValueError, match="adamw's mu_dtype is 'int8'; choose one of float32, bfloat16, float16"):
        optim.adamw(0.1, mu_dtype="int8")
    with pytest.raises(ValueError, match="scion's mu_dtype is 'bf16'; choose one of"):
        optim.scion(0.1, {}, mu_dtype="bf16")


@pytest.fixture(scope="module")
def small():
    """(params, geometry, one gradient per step) of the :data:`SMALL` GPT, all drawn standard normal."""
    model = nnx.eval_shape(lambda: zoo.create("gpt-tiny", rngs=nnx.Rngs(0), **SMALL))  # its shapes and geometry
    rng = np.random.default_rng(0)
    params, *grads = (jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32),
                                   nnx.to_pure_dict(nnx.state(model, nnx.Param))) for _ in range(1 + STEPS))
    return params, zoo.geometry(model), grads


def _run(name, mu_dtype, small):
    params, geometry, grads = small
    tx = optim.build(name, 0.01, geometry, mu_dtype=mu_dtype)
    state, updates = tx.init(params), []
    for g in grads:  # eager: op by op is quicker here than compiling ten optimizers
        u, state = tx.update(g, state, params)
        updates.append(u)
    return updates, state


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_bf16_state_keeps_its_dtype_and_tracks_the_f32_updates(name, small):
    params, geometry, _ = small
    n_params = sum(p.size for p in jax.tree.leaves(params))
    exact, exact_state = _run(name, None, small)
    light, light_state = _run(name, "bfloat16", small)
    # one momentum buffer per parameter, in bf16 after every step (Adam's second moment stays f32)
    assert sum(x.size for x in jax.tree.leaves(light_state) if x.dtype == jnp.bfloat16) == n_params
    assert not any(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(exact_state))
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves((light, light_state)))
    # Each step stores the momentum once, rounding it by at most 2^-8 of itself, so after STEPS steps it is
    # off by up to STEPS * 2^-8 (1.2%); the update is a scale-free map of it computed in f32, whose stretching
    # directions (Adam's 1/sqrt(v), Newton-Schulz's polynomial) may double that: 2 * STEPS * 2^-8 = 2.3%.
    tol = 2 * STEPS * BF16_ROUNDING
    roles = [g.role for g in optim.geometry.leaves(geometry)]
    for a, b in zip(exact, light):
        for x, y, role in zip(jax.tree.leaves(a), jax.tree.leaves(b), roles):
            assert y.dtype == jnp.float32
            if name == "scion" and role == "output":
                # Scion's Sign LMO jumps at 0: an entry flips only where the momentum lies within its rounding
                # error of 0, a fraction of the entries of the order of that relative error
                assert float(jnp.mean(jnp.sign(x) != jnp.sign(y))) <= tol
            else:
                assert float(jnp.linalg.norm(x - y) / jnp.linalg.norm(x)) <= tol, role


def test_scion_light_mode_halves_the_state_and_the_table_counts_real_bytes(small):
    params, geometry, _ = small
    n_params = sum(p.size for p in jax.tree.leaves(params))
    memory = memory_figures("gpt-tiny", **SMALL)
    state = memory["state"]
    assert memory["params"] == 4 * n_params
    assert state["scion", "float32"] == memory["params"]  # one f32 buffer shaped like the parameters
    assert 2 * state["scion", "bfloat16"] == state["scion", "float32"]  # the light mode: half of it
    assert state["adamw", "float32"] == 2 * memory["params"] + 4  # two f32 moments and an int32 count
    # the shapes-only figures are what allocating the state gives
    light = optim.scion(0.1, geometry, mu_dtype=jnp.bfloat16).init(params)
    assert tree_bytes(light) == state["scion", "bfloat16"]


def test_bf16_gpt_trains_with_scion_light_from_the_command_line(tmp_path):
    main(["train", "--config", "configs/gpt_shakespeare.py:test,optim=scion", "--workdir", str(tmp_path),
          "--config.model.dtype=bfloat16", "--config.optim.scion.mu_dtype=bfloat16", "--config.train.steps=5",
          "--config.train.checkpoint_every=5", "--config.train.sample_tokens=0",
          "--config.mesh.data=1"])  # one device compiles quicker; what is checked is the dtypes
    logged = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in logged if x.get("split") == "train"]
    assert len(losses) == 5 and all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.5
    # the checkpoint holds f32 weights and Scion's one momentum buffer in bf16
    saved = {}
    for part in ("params", "opt_state"):
        metadata = ocp.StandardCheckpointer().metadata(tmp_path / "checkpoints" / "5" / part).item_metadata
        saved[part] = {x.name: x.dtype for x in jax.tree.leaves(metadata)}
    assert set(saved["params"].values()) == {jnp.dtype(jnp.float32)}
    momentum = {name: dtype for name, dtype in saved["opt_state"].items() if ".momentum." in name}
    assert len(momentum) == len(saved["params"]) and set(momentum.values()) == {jnp.dtype(jnp.bfloat16)}
