"""GPT: a decoder-only transformer built from modular-norm atoms and bonds.

Follows Modula's GPT (Large et al. 2024, §4 and App. D): token and position
embeddings (mass 1 together), a residual stack of attention and MLP branches
(mass 5), an RMS-normed linear head (mass 1); pre-norm with parameter-free
RMSNorm, attention logits scaled by 1/d_head, GELU/1.1289, no biases or
gains. The resulting multipliers are 1/7 for the embeddings and head, 5/21 for
the attention out-projection and MLP matrices and 15/21 for Q, K and V, at any
depth. Blocks are stacked, then scanned or unrolled (``layer_loop``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from zoo import nn
from zoo.models.base import LanguageModel, scan_layers

EMBED_MASS, BLOCKS_MASS, HEAD_MASS = 1.0, 5.0, 1.0


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """GPT sizes. ``width`` must be divisible by ``heads``; ``dtype`` is the compute dtype.

    ``layer_loop`` ("auto", "scan", "unroll") and ``attention`` ("auto",
    "explicit", "xla", "cudnn") choose how the same function is computed.
    """

    width: int = 128
    depth: int = 4
    heads: int = 4
    context: int = 256
    vocab: int = 256
    mlp_ratio: int = 4
    dtype: str = "float32"
    remat: bool = False
    layer_loop: str = "auto"
    attention: str = "auto"
    family: ClassVar[str] = "gpt"
    modality: ClassVar[str] = "text"

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
        qkv=nn.Parallel(q=proj(), k=proj(), v=proj()),  # concatenation of sensitivity 3 ...
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
        if cfg.width % cfg.heads:
            raise ValueError(f"width {cfg.width} is not divisible by heads {cfg.heads}; pick heads dividing the width")
        self.config = cfg
        dtype = jnp.dtype(cfg.dtype)
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
                             dtype=dtype, rngs=rngs),
        )
        super().__init__({"embed": embed, "blocks": blocks, "logits": head})
