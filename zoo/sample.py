"""Text generation from a byte-level GPT: temperature and top-k sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def generate(model, prompt: str | bytes, *, max_new_tokens: int = 200, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0) -> bytes:
    """Continue ``prompt`` by ``max_new_tokens`` bytes.

    Each step runs the model on the last ``context`` tokens (a fixed-size
    window, so one compiled function serves every step) and samples from
    softmax(logits / temperature), restricted to the ``top_k`` most likely
    bytes if given; temperature 0 takes the argmax.
    """
    prompt = prompt.encode() if isinstance(prompt, str) else bytes(prompt)
    if not prompt:
        prompt = b"\n"
    context = model.config.context
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= model.config.vocab:
        raise ValueError(f"top_k must be in 1..{model.config.vocab}, got {top_k}")

    @nnx.jit
    def next_token(model, window, length, key):
        logits = model(window[None])[0, length - 1].astype(jnp.float32)
        if temperature == 0:
            return jnp.argmax(logits)
        logits = logits / temperature
        if top_k is not None:
            kth = jax.lax.top_k(logits, top_k)[0][-1]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        return jax.random.categorical(key, logits)

    tokens = list(prompt)
    key = jax.random.key(seed)
    for _ in range(max_new_tokens):
        recent = tokens[-context:]
        window = jnp.zeros((context,), jnp.int32).at[: len(recent)].set(jnp.array(recent, jnp.int32))
        key, sub = jax.random.split(key)
        tokens.append(int(next_token(model, window, len(recent), sub)))
    return bytes(tokens[len(prompt):])
