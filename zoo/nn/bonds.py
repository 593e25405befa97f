"""Bonds: modules without weights (mass 0), each with its sensitivity.

Sensitivities follow Modula (Large et al. 2024, §3): the
activations are rescaled so their sensitivity is 1, normalizations, pooling,
reshapes and the 1/d_head attention are sensitivity 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from zoo.nn.module import Bond

GELU_MAX_SLOPE = 1.1289  # sup of d/dx GELU(x) (exact and tanh forms agree to 1e-4), Modula v2


class ReLU(Bond):
    """sqrt(2) * relu(x): ReLU halves the mean square of a symmetric input; this restores it."""

    def __call__(self, x):
        return math.sqrt(2.0) * jax.nn.relu(x)


class GELU(Bond):
    """gelu(x) / 1.1289, sensitivity 1 (Modula v2); GPT-2's tanh form, which CPUs run faster than erf."""

    def __call__(self, x):
        return jax.nn.gelu(x, approximate=True) / GELU_MAX_SLOPE


class RMSNorm(Bond):
    """Parameter-free x / RMS(x) over the last axis (with epsilon)."""

    def __init__(self, eps: float = 1e-6):
        self.eps = eps

    def __call__(self, x):
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return y.astype(x.dtype)


class MeanSubtract(Bond):
    """x - mean(x) over the last axis."""

    def __call__(self, x):
        return x - jnp.mean(x, axis=-1, keepdims=True)


class AvgPool(Bond):
    """Average pooling of NHWC images over non-overlapping ``window`` x ``window`` patches."""

    def __init__(self, window: int = 2):
        self.window = window

    def __call__(self, x):
        b, h, w, c = x.shape
        k = self.window
        if h % k or w % k:
            raise ValueError(f"AvgPool({k}) needs height and width divisible by {k}, got {h}x{w}")
        return x.reshape(b, h // k, k, w // k, k, c).mean(axis=(2, 4))


class GlobalAvgPool(Bond):
    """Mean over the spatial axes of NHWC images: (B, H, W, C) -> (B, C)."""

    def __call__(self, x):
        return x.mean(axis=(1, 2))


class Flatten(Bond):
    """(B, ...) -> (B, prod(...))."""

    def __call__(self, x):
        return x.reshape(x.shape[0], -1)


class Add(Bond):
    """Sum of a tuple of arrays (the add bond: mass 0, sensitivity 1)."""

    def __call__(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class SplitHeads(Bond):
    """(B, T, H*D) -> (B, T, H, D)."""

    def __init__(self, heads: int):
        self.heads = heads

    def __call__(self, x):
        *lead, d = x.shape
        if d % self.heads:
            raise ValueError(f"width {d} is not divisible by {self.heads} heads; pick heads dividing the width")
        return x.reshape(*lead, self.heads, d // self.heads)


class MergeHeads(Bond):
    """(B, T, H, D) -> (B, T, H*D)."""

    def __call__(self, x):
        return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1])


ATTENTION_IMPLEMENTATIONS = ("auto", "explicit", "xla", "cudnn")


def attention_implementation(name: str, dtype) -> str:
    """Resolve ``"auto"``: cuDNN's fused kernel on GPU for 16-bit inputs, else the explicit path.

    On XLA:CPU the explicit einsum-softmax-einsum path ran faster than
    ``jax.nn.dot_product_attention``'s XLA lowering (``modzoo bench train``).
    """
    if name not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"unknown attention implementation {name!r}; choose one of {ATTENTION_IMPLEMENTATIONS}")
    if name != "auto":
        return name
    gpu = jax.default_backend() == "gpu"
    return "cudnn" if gpu and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) else "explicit"


class DotProductAttention(Bond):
    """The parameter-free attention kernel: softmax(q k^T / d_head + causal mask) v for (q, k, v) of (B, T, H, D).

    Logits are scaled by 1/d_head, not 1/sqrt(d_head), which keeps attention
    well-behaved as the head dimension grows (Large et al. 2024, §4; Yang et
    al. 2021, muP §J.2.1). ``implementation``: "explicit" (two einsums and a
    float32 masked softmax), "xla" or "cudnn" (``jax.nn.dot_product_attention``),
    or "auto" (:func:`attention_implementation`). All give the same function.

    Called with ``(q, k, v, offset)`` (causal only), query i sits at key
    position ``offset + i`` (``offset`` may be traced) and sees keys 0..offset+i:
    a decode step attending over a key/value cache whose later entries are not
    written yet (always computed by the explicit path). Without it the queries
    are the last ``T_q`` of the keys.
    """

    def __init__(self, causal: bool = True, implementation: str = "auto"):
        attention_implementation(implementation, jnp.float32)  # validate the name
        self.causal = causal
        self.implementation = implementation

    def __call__(self, qkv):
        q, k, v, *offset = qkv
        if offset and not self.causal:
            raise ValueError("a query offset needs causal attention; build DotProductAttention(causal=True)")
        scale = 1.0 / q.shape[-1]
        how = attention_implementation(self.implementation, q.dtype)
        if how != "explicit" and not offset:
            return jax.nn.dot_product_attention(q, k, v, scale=scale, is_causal=self.causal, implementation=how)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
        if self.causal:
            t_q, t_k = q.shape[1], k.shape[1]
            first = offset[0] if offset else t_k - t_q
            mask = jnp.arange(t_q)[:, None] + first >= jnp.arange(t_k)[None, :]
            logits = jnp.where(mask, logits, -jnp.inf)
        weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        return jnp.einsum("bhqk,bkhd->bqhd", weights, v)
