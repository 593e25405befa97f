"""``modzoo bench train``: the pure-JAX reference computes the zoo GPT's function, and a tiny run completes."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import zoo
from zoo.benchmarks import train_step
from zoo.models.gpt import GPTConfig
from zoo.train.loop import model_config

TINY = dataclasses.replace(GPTConfig(vocab=256, mlp_ratio=4), **train_step.QUICK)  # the quick run's sizes


def reference_params_from_zoo(p: dict, depth: int) -> dict:
    """The zoo GPT's pure-dict parameters laid out as the reference's dict (the stacked blocks sliced)."""
    attn, mlp = p["blocks"]["layers"]["attn"], p["blocks"]["layers"]["mlp"]
    stacked = {"q": attn["qkv"]["q"]["linear"]["kernel"], "k": attn["qkv"]["k"]["linear"]["kernel"],
               "v": attn["qkv"]["v"]["linear"]["kernel"], "out": attn["out"]["kernel"],
               "up": mlp["up"]["kernel"], "down": mlp["down"]["kernel"]}
    return {"token": p["embed"]["lookup"]["token"]["table"],
            "position": p["embed"]["lookup"]["position"]["table"],
            "blocks": [{name: w[i] for name, w in stacked.items()} for i in range(depth)],
            "head": p["logits"]["linear"]["kernel"]}


def _size(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))


def _both(dtype: str):
    """(config, zoo graphdef, zoo params, the same weights as reference params, a token batch)."""
    cfg = dataclasses.replace(TINY, dtype=dtype)
    graphdef, state = nnx.split(zoo.build(cfg, rngs=nnx.Rngs(0)))
    zoo_params = nnx.to_pure_dict(state)
    ref_params = reference_params_from_zoo(zoo_params, cfg.depth)
    assert _size(ref_params) == _size(zoo_params)  # every zoo parameter has its place in the reference
    shapes = jax.tree.map(jnp.shape, ref_params)
    assert shapes == jax.tree.map(jnp.shape, train_step.reference_init(cfg))
    return cfg, graphdef, zoo_params, ref_params, cfg.example_batch(3, jax.random.key(1))["tokens"]


def test_reference_computes_the_zoo_gpt():
    """On the zoo's initial weights the reference's loss and every gradient equal the zoo GPT's (f32)."""
    cfg, graphdef, zoo_params, ref_params, tokens = _both("float32")

    def zoo_loss(p):
        return nnx.merge(graphdef, p).loss({"tokens": tokens})[0]

    zoo_value, zoo_grads = jax.jit(jax.value_and_grad(zoo_loss))(zoo_params)
    ref_value, ref_grads = jax.jit(jax.value_and_grad(train_step.reference_loss), static_argnums=2)(
        ref_params, tokens, cfg)
    assert abs(float(zoo_value) - math.log(cfg.vocab)) < 1.0  # a real loss, not a degenerate one
    assert abs(float(ref_value) - float(zoo_value)) <= 1e-5
    for ours, theirs in zip(jax.tree.leaves(reference_params_from_zoo(zoo_grads, cfg.depth)),
                            jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(np.asarray(theirs), np.asarray(ours), rtol=1e-4, atol=1e-7)


def test_reference_computes_the_zoo_gpt_in_bf16():
    """With bf16 compute (gpt-small's GPU case) both cast at the same places: losses agree to bf16 rounding."""
    cfg, graphdef, zoo_params, ref_params, tokens = _both("bfloat16")
    zoo_value = jax.jit(lambda p: nnx.merge(graphdef, p).loss({"tokens": tokens})[0])(zoo_params)
    ref_value = jax.jit(train_step.reference_loss, static_argnums=2)(ref_params, tokens, cfg)
    assert abs(float(ref_value) - float(zoo_value)) <= 1e-2


def test_quick_run_measures_every_case_and_step(capsys):
    """Every case (gpt-small's bf16 one included, shrunk) gives a row per step; AdamW only: each compile costs."""
    rows = train_step.run(("adamw",), repeats=1, quick=True, gpt_small=True)
    labels = [c.label for c in train_step.cases(gpt_small=True)]
    steps = ["reference", "adamw"]
    assert [(r["case"], r["step"]) for r in rows] == [(c, s) for c in labels for s in steps]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["mfu"] > 0 and r["vs_reference"] > 0
        if r["step"] != "reference":
            assert r["vs_adamw"] > 0
    by_step = {(r["case"], r["step"]): r for r in rows}
    for c in labels:  # the ratios are the rows' own tokens/s divided
        adamw, ref = by_step[(c, "adamw")], by_step[(c, "reference")]
        assert adamw["vs_reference"] == pytest.approx(adamw["tokens_per_s"] / ref["tokens_per_s"])
    out = capsys.readouterr().out
    assert all(label in out for label in labels) and "÷ reference" in out


def test_cases_match_the_brief():
    """The baby GPT is nanoGPT's; the main job's model and batch come from its config; gpt-small runs in bf16."""
    from configs import gpt_shakespeare

    baby, main, small = train_step.cases(gpt_small=True)
    b = baby.model
    assert (b.width, b.depth, b.heads, b.context, b.vocab, b.mlp_ratio, baby.batch_size) == (128, 4, 4, 64, 256, 4, 12)
    config = gpt_shakespeare.get_config()
    assert main.model == dataclasses.replace(model_config(config), dtype="float32")  # "auto" on CPU
    assert main.batch_size == config.train.batch_size
    s = small.model
    assert (s.width, s.depth, s.heads, s.context, s.dtype) == (768, 12, 12, 1024, "bfloat16")


@pytest.mark.parametrize("kind, expected", [("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12),
                                            ("NVIDIA H200", 989e12), ("Some Future GPU", None)])
def test_mfu_peak_by_device_kind(monkeypatch, kind, expected):
    """Known GPUs use their bf16 dense peak (the longest matching name); unknown ones the measured matmul rate."""
    from types import SimpleNamespace

    from zoo.benchmarks import timing

    monkeypatch.setattr(timing.jax, "devices", lambda: [SimpleNamespace(platform="gpu", device_kind=kind)])
    monkeypatch.setattr(timing, "matmul_flops_per_s", lambda: 1.5e9)
    peak, what = timing.peak_flops_per_s()
    assert peak == (expected or 1.5e9) and ("measured" in what) == (expected is None)
