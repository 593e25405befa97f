"""Two architectures added from outside the package: a language model and an image classifier.

Each config declares its ``modality`` (what it reads), so ``modzoo train``,
``modzoo eval``, ``modzoo sample`` and ``zoo.train.train`` serve it unedited,
and the zoo derives every multiplier for the matched optimizers.
"""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

import zoo
from zoo import nn
from zoo.models.base import Classifier, LanguageModel, random_images


def _mlp_blocks(width: int, depth: int, rngs):
    return nn.Residual(
        lambda r: {"mlp": nn.Sequential(norm=nn.RMSNorm(), up=nn.Linear(width, 4 * width, rngs=r), act=nn.GELU(),
                                        down=nn.Linear(4 * width, width, rngs=r))},
        depth, rngs=rngs)


@dataclasses.dataclass(frozen=True)
class BigramMLPConfig:
    """A neural bigram language model: each byte's next byte from that byte alone, through residual MLPs."""

    width: int = 64
    depth: int = 2
    context: int = 64
    vocab: int = 256
    family: ClassVar[str] = "bigram-mlp"
    modality: ClassVar[str] = "text"  # batch {"tokens": (B, context + 1)}

    def tiny(self):  # what the zoo's registry-generated tests build
        return dataclasses.replace(self, width=16, depth=1, context=8)

    def build(self, *, rngs):
        return BigramMLP(self, rngs=rngs)

    def example_batch(self, batch_size, key):
        return {"tokens": jax.random.randint(key, (batch_size, self.context + 1), 0, self.vocab, jnp.int32)}


class BigramMLP(LanguageModel):
    def __init__(self, cfg, *, rngs):
        self.config = cfg
        super().__init__({
            "embed": nn.Embed(cfg.vocab, cfg.width, rngs=rngs),
            "blocks": _mlp_blocks(cfg.width, cfg.depth, rngs),
            "logits": nn.Sequential(norm=nn.RMSNorm(),
                                    linear=nn.Linear(cfg.width, cfg.vocab, role="output", rngs=rngs)),
        })


@dataclasses.dataclass(frozen=True)
class PixelMLPConfig:
    """An MLP on raw pixels with residual blocks."""

    width: int = 128
    depth: int = 2
    image_size: int = 32
    channels: int = 3
    classes: int = 10
    family: ClassVar[str] = "pixel-mlp"
    modality: ClassVar[str] = "image"  # batch {"image": (B, H, W, C), "label": (B,)}

    def tiny(self):
        return dataclasses.replace(self, width=16, depth=1, image_size=8)

    def build(self, *, rngs):
        return PixelMLP(self, rngs=rngs)

    def example_batch(self, batch_size, key):
        return random_images(self, batch_size, key)


class PixelMLP(Classifier):
    def __init__(self, cfg, *, rngs):
        self.config = cfg
        pixels = cfg.image_size * cfg.image_size * cfg.channels
        super().__init__({
            "input": nn.Sequential(flat=nn.Flatten(), linear=nn.Linear(pixels, cfg.width, rngs=rngs),
                                   bias=nn.Bias(cfg.width, rngs=rngs)),  # gains and biases are atoms too
            "blocks": _mlp_blocks(cfg.width, cfg.depth, rngs),
            "logits": nn.Linear(cfg.width, cfg.classes, role="output", rngs=rngs),
        })


zoo.register("bigram-mlp", BigramMLPConfig())
zoo.register("pixel-mlp", PixelMLPConfig())
