"""GPT: a decoder-only transformer built from modular-norm atoms and bonds.

Follows Modula's GPT (Large et al. 2024, §4 and App. D): token and position
embeddings (mass 1 together), a residual stack of attention and MLP branches
(mass 5), an RMS-normed linear head (mass 1); pre-norm with parameter-free
RMSNorm, attention logits scaled by 1/d_head, GELU/1.1289, no biases or
gains. The resulting multipliers are 1/7 for the embeddings and head, 5/21 for
the attention out-projection and MLP matrices and 15/21 for Q, K and V, at any
depth. Blocks are stacked, then scanned or unrolled (``layer_loop``).
:meth:`GPT.decode` runs the same modules incrementally over a key/value cache.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from zoo import nn
from zoo.models.base import LanguageModel, check_sizes, compute_dtype, scan_layers

EMBED_MASS, BLOCKS_MASS, HEAD_MASS = 1.0, 5.0, 1.0


class KVCache(NamedTuple):
    """Every block's attention keys and values, each (depth, B, context, heads, d_head)."""

    k: jax.Array
    v: jax.Array


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """GPT sizes. ``width`` must be divisible by ``heads``; ``dtype`` is the compute dtype
    ("auto": bfloat16 on GPU and TPU, float32 on CPU; :func:`~zoo.models.base.compute_dtype`).

    ``layer_loop`` ("auto", "scan", "unroll"), ``attention`` ("auto",
    "explicit", "xla", "cudnn") and ``fused_qkv`` (Q, K and V as one matmul,
    :class:`zoo.nn.FusedParallel`) choose how the same function is computed.
    """

    width: int = 128
    depth: int = 4
    heads: int = 4
    context: int = 256
    vocab: int = 256
    mlp_ratio: int = 4
    dtype: str = "auto"
    remat: bool = False
    layer_loop: str = "auto"
    attention: str = "auto"
    fused_qkv: bool = True
    family: ClassVar[str] = "gpt"
    modality: ClassVar[str] = "text"

    def __post_init__(self):
        check_sizes(self, "width", "depth", "heads", "context", "vocab", "mlp_ratio")
        if self.width % self.heads:
            fits = max(h for h in range(1, min(self.heads, self.width) + 1) if self.width % h == 0)
            raise ValueError(f"gpt width {self.width} is not divisible by heads {self.heads}; pick heads that divide "
                             f"the width, e.g. heads={fits}")

    def tiny(self) -> GPTConfig:
        """This config shrunk for tests: width 32, 2 blocks, 4 heads, context 16."""
        return dataclasses.replace(self, width=32, depth=2, heads=4, context=16)

    def build(self, *, rngs: nnx.Rngs) -> GPT:
        return GPT(self, rngs=rngs)

    def example_batch(self, batch_size: int, key: jax.Array) -> dict:
        """Random tokens of shape (batch_size, context + 1) (inputs plus next-token targets)."""
        return {"tokens": jax.random.randint(key, (batch_size, self.context + 1), 0, self.vocab, jnp.int32)}


def _attention(cfg: GPTConfig, dtype, rngs: nnx.Rngs) -> nn.Module:
    def proj():
        return nn.Sequential(linear=nn.Linear(cfg.width, cfg.width, axes=("embed", "heads"), dtype=dtype, rngs=rngs),
                             split=nn.SplitHeads(cfg.heads))

    return nn.Sequential(
        norm=nn.RMSNorm(),
        qkv=(nn.FusedParallel if cfg.fused_qkv else nn.Parallel)(q=proj(), k=proj(), v=proj()),  # sensitivity 3 ...
        attend=nn.Scaled(1 / 3, nn.DotProductAttention(causal=True, implementation=cfg.attention)),  # ... brought back to 1
        merge=nn.MergeHeads(),
        out=nn.Linear(cfg.width, cfg.width, axes=("heads", "embed"), dtype=dtype, rngs=rngs),
    )


def _mlp(cfg: GPTConfig, dtype, rngs: nnx.Rngs) -> nn.Module:
    hidden = cfg.mlp_ratio * cfg.width
    return nn.Sequential(
        norm=nn.RMSNorm(),
        up=nn.Linear(cfg.width, hidden, axes=("embed", "mlp"), dtype=dtype, rngs=rngs),
        act=nn.GELU(),
        down=nn.Linear(hidden, cfg.width, axes=("mlp", "embed"), dtype=dtype, rngs=rngs),
    )


class GPT(LanguageModel):
    """Causal language model: ``model(tokens (B, T) int) -> logits (B, T, vocab)``."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
        self.config = cfg
        dtype = compute_dtype(cfg.dtype)
        half = EMBED_MASS / 2
        embed = nn.Sequential(
            lookup=nn.Parallel(token=nn.Embed(cfg.vocab, cfg.width, mass=half, dtype=dtype, rngs=rngs),
                               position=nn.PositionEmbed(cfg.context, cfg.width, mass=half, dtype=dtype,
                                                         rngs=rngs)),
            mean=nn.Scaled(0.5, nn.Add()),
        )
        blocks = nn.Residual(lambda r: {"attn": _attention(cfg, dtype, r), "mlp": _mlp(cfg, dtype, r)},
                             cfg.depth, mass=BLOCKS_MASS, remat=cfg.remat,
                             scan=scan_layers(cfg.layer_loop, cfg.depth), rngs=rngs)
        head = nn.Sequential(
            norm=nn.RMSNorm(),
            linear=nn.Linear(cfg.width, cfg.vocab, role="output", axes=("embed", "vocab"), mass=HEAD_MASS,
                             dtype=dtype, out_dtype=jnp.float32, rngs=rngs),
        )
        super().__init__({"embed": embed, "blocks": blocks, "logits": head})

    def init_cache(self, batch: int) -> KVCache:
        """An empty (zero) key/value cache for ``batch`` sequences, in the compute dtype."""
        cfg = self.config
        zeros = jnp.zeros((cfg.depth, batch, cfg.context, cfg.heads, cfg.width // cfg.heads), compute_dtype(cfg.dtype))
        return KVCache(zeros, zeros)

    def decode(self, tokens: jax.Array, cache: KVCache, position) -> tuple[jax.Array, KVCache]:
        """Logits (B, T, vocab) of ``tokens`` (B, T) at positions ``position``.. ``position + T - 1``, and the cache
        with their keys and values written in (``position`` may be traced; ``position + T <= context``).

        Each token attends to the cached keys up to its own position, so a
        prefill (the prompt at position 0) and then one token per call give the
        full forward's logits. The blocks are this model's own modules, run on
        the same stacked weights, scanned or unrolled as in the forward.
        """
        lookup = self.embed.lookup
        every_position = lookup.position(jnp.zeros((self.config.context,), jnp.int32))
        x = self.embed.mean((lookup.token(tokens),
                             jax.lax.dynamic_slice_in_dim(every_position, position, tokens.shape[1])))
        blocks = self.blocks
        graphdef, stacked = nnx.split(blocks.layers)

        def block(i, layer_state, x, cache):
            layer = nnx.merge(graphdef, layer_state)
            attn = layer.attn
            q, k, v = attn.qkv(attn.norm(x))
            cache = KVCache(*(jax.lax.dynamic_update_slice(c, new[None].astype(c.dtype), (i, 0, position, 0, 0))
                              for c, new in zip(cache, (k, v))))
            k, v = (jax.lax.dynamic_index_in_dim(c, i, keepdims=False) for c in cache)
            x = blocks.update(x, attn.out(attn.merge(attn.attend((q, k, v, position)))))
            return blocks.update(x, layer.mlp(x)), cache

        if blocks.scan:
            def body(carry, xs):
                return block(xs[0], xs[1], *carry), None

            (x, cache), _ = jax.lax.scan(body, (x, cache), (jnp.arange(blocks.depth), stacked))
        else:
            for i in range(blocks.depth):
                x, cache = block(i, jax.tree.map(lambda a: a[i], stacked), x, cache)
        return self.logits(x), cache
