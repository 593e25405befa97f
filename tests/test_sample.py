"""Sampling: the cached decode gives the full forward's logits, and generation matches a full recompute."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import zoo
from zoo.benchmarks import sampling
from zoo.benchmarks.sampling import recompute_generate
from zoo.cli import main
from zoo.models.base import LanguageModel
from zoo.models.gpt import GPT
from zoo.sample import generate, sample_token


@functools.cache
def _model(layer_loop: str = "unroll"):
    cfg = zoo.get_config("gpt-tiny").tiny()  # width 32, 2 blocks, 4 heads, context 16
    return zoo.build(dataclasses.replace(cfg, layer_loop=layer_loop), rngs=nnx.Rngs(0))


_forward = nnx.jit(lambda model, tokens: model(tokens))


def _stepwise_logits(model, tokens, prefill: int):
    """Logits of ``tokens`` (B, T): the first ``prefill`` in one call, then one token per call."""
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, cache, chunk, position):
        return nnx.merge(graphdef, state).decode(chunk, cache, position)

    logits, cache = run(state, model.init_cache(tokens.shape[0]), tokens[:, :prefill], 0)
    steps = [logits]
    for t in range(prefill, tokens.shape[1]):
        logits, cache = run(state, cache, tokens[:, t:t + 1], t)
        steps.append(logits)
    return jnp.concatenate(steps, axis=1)


@pytest.mark.parametrize("layer_loop", ["unroll", "scan"])
def test_cached_decode_gives_the_full_forward_logits(layer_loop):
    model = _model(layer_loop)
    tokens = jax.random.randint(jax.random.key(1), (2, model.config.context), 0, model.config.vocab)
    full = _forward(model, tokens)
    cached = _stepwise_logits(model, tokens, prefill=5)
    np.testing.assert_allclose(cached, full, atol=1e-5, rtol=0)
    assert float(jnp.abs(full).max()) > 0.1  # the comparison is not between near-zeros


def _reference_greedy(model, prompt: bytes, count: int, keep: int) -> bytes:
    """Full recompute, as the old sampler did it: the model on the whole window (padded to the context)
    for every byte. The window holds at most ``context`` bytes; when it is full, the next byte leaves its
    last ``keep`` (``keep = context``: the old sampler's window, sliding by one byte)."""
    context = model.config.context
    window, out = list(prompt)[-context:], []
    for _ in range(count):
        padded = np.zeros((1, context), np.int32)
        padded[0, :len(window)] = window
        token = int(jnp.argmax(_forward(model, padded)[0, len(window) - 1]))
        out.append(token)
        window = window + [token] if len(window) < context else (window + [token])[-keep:]
    return bytes(out)


def test_greedy_generation_within_the_context_equals_the_old_full_recompute():
    model = _model()
    count = model.config.context + 1 - 3  # the last byte is predicted from a full window
    got = generate(model, b"abc", max_new_tokens=count, temperature=0)
    assert len(got) == count
    assert got == _reference_greedy(model, b"abc", count, keep=model.config.context)


def test_generation_past_the_context_slides_by_prefilling_the_last_half():
    model = _model()
    context = model.config.context
    prompt = bytes(range(65, 65 + context + 4))  # longer than the context: its last `context` bytes are read
    got = generate(model, prompt, max_new_tokens=2 * context + 3, temperature=0)
    assert got == _reference_greedy(model, prompt, 2 * context + 3, keep=context // 2)


class _NoCacheGPT(GPT):
    """A GPT that decodes like a model without a cache: the language model's default full recompute."""

    init_cache = LanguageModel.init_cache
    decode = LanguageModel.decode


def test_a_model_without_a_cache_generates_by_recomputing_its_window():
    model = _NoCacheGPT(_model("scan").config, rngs=nnx.Rngs(0))  # scanned blocks: an nnx transform in the loop
    context = model.config.context
    got = generate(model, b"xyz", max_new_tokens=2 * context, temperature=0)
    assert got == _reference_greedy(model, b"xyz", 2 * context, keep=context // 2)


def test_top_1_sampling_is_greedy_and_a_seed_fixes_the_draws():
    model = _model()
    greedy = generate(model, "hi", max_new_tokens=20, temperature=0)
    assert generate(model, "hi", max_new_tokens=20, temperature=1.5, top_k=1, seed=3) == greedy
    drawn = generate(model, "hi", max_new_tokens=20, temperature=1.5, seed=3)
    assert drawn == generate(model, "hi", max_new_tokens=20, temperature=1.5, seed=3)
    assert drawn != generate(model, "hi", max_new_tokens=20, temperature=1.5, seed=4)


def test_top_k_draws_only_the_k_largest_in_proportion():
    logits = jnp.log(jnp.array([0.1, 0.4, 0.05, 0.3, 0.15]))
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = np.asarray(jax.jit(jax.vmap(lambda k: sample_token(logits, k, 1.0, 2)))(keys))
    assert set(draws) == {1, 3}
    assert abs((draws == 1).mean() - 0.4 / 0.7) < 0.03


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -0.5}, r"^temperature must be >= 0, got -0.5$"),
    ({"top_k": 0}, r"^top_k must be in 1..256, got 0$"),
    ({"top_k": 257}, r"^top_k must be in 1..256, got 257$"),
    ({"max_new_tokens": -1}, r"^max_new_tokens must be >= 0, got -1$"),
])
def test_bad_sampling_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(_model(), "x", **kwargs)


def test_the_cli_reports_a_bad_setting_in_one_line(monkeypatch):
    monkeypatch.setattr(zoo.pretrained, "load", lambda name: _model())
    with pytest.raises(SystemExit, match=r"^modzoo sample: top_k must be in 1..256, got 300$"):
        main(["sample", "--top-k", "300", "--tokens", "5"])


def test_bench_sample_times_both_samplers_and_its_baseline_is_the_old_sampler(capsys):
    model = _model()
    count = model.config.context - 2
    assert recompute_generate(model, "abc", max_new_tokens=count, temperature=0, top_k=None) == \
        generate(model, "abc", max_new_tokens=count, temperature=0)
    (row,) = sampling.run(model, lengths=(4,), repeats=1, prompt="abc")
    assert row["ratio"] == row["cached_tokens_per_s"] / row["recompute_tokens_per_s"] > 0
    assert capsys.readouterr().out.splitlines()[-1].split()[0] == "4"
