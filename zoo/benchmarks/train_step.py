"""``modzoo bench train``: the zoo's train step beside a minimal pure-JAX one of the same shapes.

One run measures, for each case, the tokens/s and MFU of the zoo's train step
(:func:`zoo.train.step.make_train_step`, the optimizer from the main job's
settings through :func:`optim.from_settings`) with every optimizer, and of an
in-run **reference**: a plain ``jax.numpy`` GPT written below with no zoo code
(parameters as a dict, blocks unrolled in a Python loop, attention as two
einsums and a masked softmax, AdamW from optax) that computes the same
function as the zoo GPT (the tests check the losses agree on copied weights).
Each zoo figure is printed as a ratio to the reference's tokens/s and to the
zoo's AdamW.

Cases: nanoGPT's baby GPT (width 128, 4 blocks, 4 heads, context 64, batch
12, bytes), the main job (``configs/gpt_shakespeare.py``'s model and batch)
and, on a GPU, gpt-small (GPT-2 small's dimensions, context 1024) in bf16.

MFU = model FLOPs per second / the rate of :func:`peak_flops_per_s`: on a known
GPU its bf16 dense peak, otherwise the f32 matmul rate measured in the same
run. Model FLOPs per token follow the PaLM appendix (Chowdhery et al. 2022,
App. B): 6 N (N = non-embedding parameters) + 12 L d T for attention, the same
count for the zoo and the reference. Every time is the median of ``repeats``
steps after a warm-up, measured in interleaved rounds (one step of each in turn), every step jitted with
its state donated.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optim
import zoo
from configs import gpt_shakespeare
from zoo.benchmarks.timing import interleaved_seconds, peak_flops_per_s, step_runner
from zoo.models.base import compute_dtype
from zoo.models.gpt import GPTConfig
from zoo.summary import param_count
from zoo.train.loop import model_config, optimizer_settings
from zoo.train.step import make_train_step

OPTIMIZERS = ("adamw", "normalized_adam", "scion", "muon")
QUICK = {"width": 32, "depth": 2, "heads": 4, "context": 16}
"""``quick=True`` shrinks every case to these sizes and batch 2 and compiles without XLA's backend
optimizations (:data:`QUICK_COMPILE`, a third of the compile time): a smoke run, not a measurement."""
QUICK_COMPILE = {"xla_backend_optimization_level": 0}


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmarked configuration: a GPT and the batch size it trains at."""

    label: str
    model: GPTConfig
    batch_size: int


def cases(gpt_small: bool, quick: bool = False) -> list[Case]:
    """The baby GPT, the main job and (``gpt_small``) gpt-small in bf16, each with its compute dtype resolved;
    ``quick`` shrinks each (:data:`QUICK`)."""
    main = gpt_shakespeare.get_config()
    out = [Case("nanoGPT baby", GPTConfig(width=128, depth=4, heads=4, context=64, vocab=256, mlp_ratio=4), 12),
           Case("main job (configs/gpt_shakespeare.py)", model_config(main), int(main.train.batch_size))]
    if gpt_small:
        out.append(Case("gpt-small bf16", zoo.get_config("gpt-small", dtype="bfloat16"), 16))
    shrink = QUICK if quick else {}
    # the compute dtype named outright ("auto" resolved for this platform), so the reference computes in it too
    return [Case(c.label, dataclasses.replace(c.model, dtype=compute_dtype(c.model.dtype).name, **shrink),
                 2 if quick else c.batch_size) for c in out]


def flops_per_token(model) -> float:
    """6 N + 12 L d T: training FLOPs per token of a zoo GPT (PaLM, App. B)."""
    cfg = model.config
    embed = sum(x.size for x in jax.tree.leaves(nnx.state(model.embed, nnx.Param)))
    return 6 * (param_count(model) - embed) + 12 * cfg.depth * cfg.width * cfg.context


def optimizer_for(name: str, geometry) -> optax.GradientTransformation:
    """Optimizer ``name`` exactly as the main job builds it (its rate, schedule and section of the config)."""
    config = gpt_shakespeare.get_config(f"optim={name}")
    return optim.from_settings(optimizer_settings(config), geometry, int(config.train.steps))


# --- the reference: a plain jax.numpy GPT (no zoo code) ---------------------------------------------------------

GELU_SLOPE = 1.1289  # largest slope of GELU: dividing by it keeps the MLP's sensitivity at 1 (Modula v2)


def reference_init(cfg: GPTConfig, seed: int = 0) -> dict:
    """Parameters of the reference GPT: embeddings, one dict of matrices per block, an untied head (all f32,
    drawn on the host: nothing to compile)."""
    d, hidden = cfg.width, cfg.mlp_ratio * cfg.width
    rng = np.random.default_rng(seed)

    def normal(n_in, n_out, scale):
        return jnp.asarray(rng.standard_normal((n_in, n_out), np.float32) * scale)

    def matrix(n_in, n_out):
        return normal(n_in, n_out, 1 / math.sqrt(n_in))

    return {
        "token": normal(cfg.vocab, d, 1.0),
        "position": normal(cfg.context, d, 1.0),
        "blocks": [{"q": matrix(d, d), "k": matrix(d, d), "v": matrix(d, d), "out": matrix(d, d),
                    "up": matrix(d, hidden), "down": matrix(hidden, d)} for _ in range(cfg.depth)],
        "head": matrix(d, cfg.vocab),
    }


def _rms_norm(x):
    xf = x.astype(jnp.float32)
    return (xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + 1e-6)).astype(x.dtype)


def reference_loss(params: dict, tokens: jax.Array, cfg: GPTConfig) -> jax.Array:
    """Mean next-token cross-entropy of ``tokens`` (B, T+1) under the reference GPT, computed in ``cfg.dtype``.

    Pre-norm blocks with parameter-free RMSNorm, residual x <- (1-a) x + a branch(x), a = 1/(2 depth);
    embeddings averaged; attention logits scaled by 1/d_head and its output by 1/3; GELU (tanh) / 1.1289.
    """
    dtype = jnp.dtype(cfg.dtype)  # a named dtype: cases() resolves "auto"
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    b, t = inputs.shape
    d_head = cfg.width // cfg.heads
    a = 1.0 / (2 * cfg.depth)

    def linear(x, w):
        return x @ w.astype(dtype)

    x = 0.5 * (params["token"][inputs].astype(dtype) + params["position"][:t].astype(dtype))
    x = x.reshape(b * t, cfg.width)  # the residual stream as one matrix: every projection is a 2-D matmul
    causal = jnp.tril(jnp.ones((t, t), bool))
    for block in params["blocks"]:
        h = _rms_norm(x)
        q, k, v = (linear(h, block[n]).reshape(b, t, cfg.heads, d_head) for n in ("q", "k", "v"))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) / d_head
        weights = jax.nn.softmax(jnp.where(causal, logits, -jnp.inf), axis=-1).astype(dtype)
        attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v) / 3
        x = (1 - a) * x + a * linear(attended.reshape(b * t, cfg.width), block["out"])
        hidden = jax.nn.gelu(linear(_rms_norm(x), block["up"]), approximate=True) / GELU_SLOPE
        x = (1 - a) * x + a * linear(hidden, block["down"])
    logits = linear(_rms_norm(x), params["head"]).astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, targets.reshape(-1, 1), axis=-1))


def reference_step(cfg: GPTConfig, tx: optax.GradientTransformation):
    """``step(params, opt_state, tokens) -> (params, opt_state, loss)`` of the reference GPT."""

    def step(params, opt_state, tokens):
        loss, grads = jax.value_and_grad(reference_loss)(params, tokens, cfg)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def reference_adamw() -> optax.GradientTransformation:
    """Plain ``optax.adamw`` at the main job's AdamW rate and settings, constant rate."""
    settings = optimizer_settings(gpt_shakespeare.get_config("optim=adamw"))
    return optax.adamw(settings["learning_rate"], **settings["adamw"])


# --- measurement ------------------------------------------------------------------------------------------------

def measure(case: Case, optimizers=OPTIMIZERS, repeats: int = 15, compiler_options: dict | None = None) -> dict:
    """Seconds per step of the reference and of the zoo step with each optimizer (medians of interleaved rounds:
    :func:`interleaved_seconds`), and the model's FLOPs/token (every step compiled with XLA's
    ``compiler_options``)."""
    tokens = case.model.example_batch(case.batch_size, jax.random.key(0))["tokens"]
    tx = reference_adamw()
    params = reference_init(case.model)
    runners = {"reference": step_runner(reference_step(case.model, tx), params, tx.init(params), tokens,
                                        compiler_options)}
    model = zoo.build(case.model, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    geometry = zoo.geometry(model)
    for name in optimizers:
        params = jax.tree.map(jnp.copy, nnx.to_pure_dict(state))  # a fresh copy: each runner donates its own
        tx = optimizer_for(name, geometry)
        runners[name] = step_runner(make_train_step(graphdef, tx), params, tx.init(params), {"tokens": tokens},
                                    compiler_options)
    return {"seconds": interleaved_seconds(runners, repeats), "params": param_count(model),
            "flops_per_token": flops_per_token(model)}


def rows_of(case: Case, measured: dict, peak: float) -> list[dict]:
    """One row per step: ms/step, tokens/s, MFU and the ratios of tokens/s to the reference's and AdamW's."""
    per_step = case.batch_size * case.model.context
    rate = {name: per_step / s for name, s in measured["seconds"].items()}
    return [{"case": case.label, "step": name, "ms_per_step": 1e3 * s, "tokens_per_s": rate[name],
             "mfu": measured["flops_per_token"] * rate[name] / peak,
             "vs_reference": rate[name] / rate["reference"],
             "vs_adamw": rate[name] / rate["adamw"] if "adamw" in rate and name != "reference" else None}
            for name, s in measured["seconds"].items()]


def _describe(case: Case, measured: dict) -> str:
    m = case.model
    return (f"{case.label}: width {m.width}, {m.depth} blocks, {m.heads} heads, context {m.context}, "
            f"batch {case.batch_size}, vocab {m.vocab}, {m.dtype}; {measured['params']:,} params, "
            f"{measured['flops_per_token'] / 1e6:.2f} MFLOP/token")


def run(optimizers=OPTIMIZERS, *, repeats: int = 15, quick: bool = False, gpt_small: bool | None = None) -> list[dict]:
    """Measure and print every case (module docstring); returns one row per case and step.

    ``gpt_small`` defaults to whether the default device is a GPU; ``quick``
    shrinks every case to :data:`QUICK` (for tests and smoke runs).
    """
    if gpt_small is None:
        gpt_small = jax.default_backend() == "gpu"
    peak, what = peak_flops_per_s()
    device = jax.devices()[0]
    print(f"train step on {device.device_kind} ({device.platform}); MFU against {what}: {peak / 1e9:,.1f} GFLOP/s; "
          f"median of {repeats} interleaved rounds after a warm-up; reference = pure JAX + optax.adamw"
          + ("\nquick: tiny sizes, compiled without backend optimizations: a smoke run, not a measurement" if quick
             else ""))
    rows = []
    for case in cases(gpt_small, quick):
        measured = measure(case, optimizers, repeats, QUICK_COMPILE if quick else None)
        print(_describe(case, measured))
        print(f"  {'step':<17}{'ms/step':>10}{'tokens/s':>12}{'MFU':>8}{'÷ reference':>13}{'÷ adamw':>9}")
        case_rows = rows_of(case, measured, peak)
        for row in case_rows:
            vs_adamw = f"{row['vs_adamw']:>9.2f}" if row["vs_adamw"] is not None else f"{'':>9}"
            print(f"  {row['step']:<17}{row['ms_per_step']:>10.1f}{row['tokens_per_s']:>12,.0f}{row['mfu']:>8.1%}"
                  f"{row['vs_reference']:>13.2f}{vs_adamw}")
        rows += case_rows
    print("targets (issue 10): adamw ÷ reference >= 1.0; normalized_adam and scion ÷ adamw >= 0.85")
    return rows
