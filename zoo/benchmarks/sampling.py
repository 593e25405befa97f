"""``modzoo bench sample``: tokens/s of the cached sampler against the full recompute it replaced.

Both samplers run in the same process on the same model (the pretrained
``gpt-shakespeare`` unless given one), prompt and settings (temperature 0.8,
top-k 40, as ``modzoo sample``). Each figure is the median of ``repeats`` timed
runs after a first run whose extra time (compilation; near zero once a
sampler has compiled for an earlier length) is reported apart.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import numpy as np
from flax import nnx

from zoo.sample import decode, encode, generate, sample_token


@nnx.jit
def _next_token(model, window, length, key, temperature, top_k):
    return sample_token(model(window[None])[0, length - 1], key, temperature, top_k)


def recompute_generate(model, prompt: str, *, max_new_tokens: int, temperature: float, top_k: int | None,
                       seed: int = 0, tokenizer=None) -> bytes:
    """The baseline, the sampler before the cache: for every token the model reruns on the last ``context``
    tokens (padded to the context, so one compiled step serves every token), called from Python. (That
    sampler also recompiled its step in every call; this one compiles once, so the ratio is per token.)
    Tokens are bytes, or ``tokenizer``'s ids as in :func:`zoo.sample.generate`."""
    context, top_k = model.config.context, top_k or model.config.vocab
    start = encode(prompt.encode(), tokenizer)
    tokens = list(start)
    key = jax.random.key(seed)
    for _ in range(max_new_tokens):
        recent = tokens[-context:]
        window = np.zeros((context,), np.int32)
        window[: len(recent)] = recent
        key, sub = jax.random.split(key)
        tokens.append(int(_next_token(model, window, len(recent), sub, float(temperature), int(top_k))))
    return decode(tokens[len(start):], tokenizer)


def _time(fn, repeats: int) -> tuple[float, float]:
    """(seconds of the first call beyond a timed one, median seconds of ``repeats`` later calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return max(first - median, 0.0), median


def run(model=None, lengths=(100, 500), repeats: int = 3, prompt: str = "ROMEO:", tokenizer=None) -> list[dict]:
    """Print and return, per length, tokens/s and compile seconds of both samplers and their ratio (``model``
    reads bytes, or ``tokenizer``'s ids; default: the pretrained ``gpt-shakespeare`` and its tokenizer)."""
    if model is None:
        from zoo import pretrained

        model, tokenizer = pretrained.load("gpt-shakespeare"), pretrained.tokenizer("gpt-shakespeare")
    cfg = model.config
    settings = {"temperature": 0.8, "top_k": 40, "tokenizer": tokenizer}
    print(f"device: {jax.devices()[0].device_kind}; model width {cfg.width}, depth {cfg.depth}, context "
          f"{cfg.context}; prompt {prompt!r}; median of {repeats}, compile apart")
    print(f"{'tokens':>7}{'cached tok/s':>14}{'compile s':>11}{'recompute tok/s':>17}{'compile s':>11}{'ratio':>8}")
    rows = []
    for n in lengths:
        cached = _time(functools.partial(generate, model, prompt, max_new_tokens=n, **settings), repeats)
        full = _time(functools.partial(recompute_generate, model, prompt, max_new_tokens=n, **settings), repeats)
        row = {"tokens": n, "cached_tokens_per_s": n / cached[1], "cached_compile_s": cached[0],
               "recompute_tokens_per_s": n / full[1], "recompute_compile_s": full[0]}
        row["ratio"] = row["cached_tokens_per_s"] / row["recompute_tokens_per_s"]
        rows.append(row)
        print(f"{n:>7}{row['cached_tokens_per_s']:>14,.0f}{cached[0]:>11.2f}{row['recompute_tokens_per_s']:>17,.1f}"
              f"{full[0]:>11.2f}{row['ratio']:>7.1f}x")
    return rows
