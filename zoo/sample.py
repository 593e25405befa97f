"""Text generation from a language model: a prefill, then one compiled decode step per token.

The prompt (its last ``context`` tokens; tokens are bytes, or a tokenizer's
ids) is run once through ``model.decode`` at position 0, filling the model's
cache (a GPT's keys and values; the token window for a model without one);
each further token is one decode step on the token just sampled. Sampling and
the loop over tokens are compiled too (``nnx.fori_loop``): on a 2-core CPU a
Python loop calling a compiled one-token step ran about 5x slower, all of it
in dispatch.

The cache holds ``context`` positions. When it is full, generation slides:
the last ``context // 2`` tokens are prefilled afresh at position 0 and decoding
goes on, so a token sees between ``context // 2`` and ``context`` tokens
before it (a full-recompute window sliding by one token would see ``context``
every time, at ``context`` times the cost).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def sample_token(logits: jax.Array, key: jax.Array, temperature, top_k) -> jax.Array:
    """A token from ``logits`` (..., vocab): the argmax at temperature 0, else a draw from
    softmax(logits / temperature) restricted to the ``top_k`` largest logits (ties with the k-th kept).

    ``temperature`` and ``top_k`` (1..vocab; vocab restricts nothing) may be
    traced, so one compiled step serves every setting.
    """
    logits = logits.astype(jnp.float32)
    kth = jnp.sort(logits, axis=-1)[..., logits.shape[-1] - top_k, None]
    scaled = jnp.where(logits < kth, -jnp.inf, logits) / jnp.where(temperature > 0, temperature, 1.0)
    return jnp.where(temperature > 0, jax.random.categorical(key, scaled), jnp.argmax(logits, axis=-1))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _continue(graphdef, state, window, length, count, key, temperature, top_k):
    """``count`` tokens (1 <= count <= context + 1 - length) after ``window[:length]``, in a buffer of context + 1.

    ``window`` is padded to the context; the padding's keys and values are
    overwritten before any query can see them.
    """
    model = nnx.merge(graphdef, state)
    logits, cache = model.decode(window[None], model.init_cache(1), 0)
    out = jnp.zeros((window.shape[0] + 1,), jnp.int32)
    out = out.at[0].set(sample_token(logits[0, length - 1], jax.random.fold_in(key, 0), temperature, top_k))

    def step(i, carry):
        model, out, cache = carry
        logits, cache = model.decode(out[i][None, None], cache, length + i)
        token = sample_token(logits[0, 0], jax.random.fold_in(key, i + 1), temperature, top_k)
        return model, out.at[i + 1].set(token), cache

    return nnx.fori_loop(0, count - 1, step, (model, out, cache))[1]  # nnx's loop: nnx transforms run inside it


def encode(text: bytes, tokenizer=None) -> list[int]:
    """Token ids of ``text``: its bytes, or ``tokenizer``'s ids (a data.tokenizer.BPE)."""
    return list(text) if tokenizer is None else tokenizer.encode(text).tolist()


def decode(ids, tokenizer=None) -> bytes:
    """The bytes of token ``ids`` (bytes themselves, or ``tokenizer``'s ids)."""
    return bytes(ids) if tokenizer is None else tokenizer.decode(ids)


def generate(model, prompt: str | bytes, *, max_new_tokens: int = 200, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, tokenizer=None) -> bytes:
    """Continue ``prompt`` by ``max_new_tokens`` tokens (see the module docstring for the cache and sliding) and
    return their bytes.

    Tokens are bytes, or with ``tokenizer`` (a data.tokenizer.BPE, the one the
    model was trained with) its ids: the prompt is encoded and the new tokens
    decoded by it. Samples from softmax(logits / temperature), restricted to
    the ``top_k`` most likely tokens if given; temperature 0 takes the argmax.
    An empty prompt starts from a newline.
    """
    vocab, context = model.config.vocab, model.config.context
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in 1..{vocab}, got {top_k}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if tokenizer is not None and tokenizer.vocab_size != vocab:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens, the model's vocab {vocab}: "
                         "sample with the tokenizer the model was trained with")
    if tokenizer is None and vocab != 256:
        raise ValueError(f"the model reads {vocab} tokens, not bytes: pass the tokenizer it was trained with, "
                         "e.g. tokenizer=zoo.pretrained.tokenizer(name) or data.tokenizer.load(run / 'tokenizer.json')")
    prompt = (prompt.encode() if isinstance(prompt, str) else bytes(prompt)) or b"\n"
    tokens = encode(prompt, tokenizer)
    graphdef, state = nnx.split(model)
    key = jax.random.key(seed)
    window, new = tokens[-context:], []
    while len(new) < max_new_tokens:
        count = min(max_new_tokens - len(new), context + 1 - len(window))
        padded = np.zeros((context,), np.int32)
        padded[: len(window)] = window
        key, sub = jax.random.split(key)
        out = _continue(graphdef, state, padded, len(window), count, sub, float(temperature), int(top_k or vocab))
        new += np.asarray(out[:count]).tolist()
        window = (tokens + new)[-max(1, context // 2):]
    return decode(new, tokenizer)
