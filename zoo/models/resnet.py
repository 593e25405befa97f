"""ResNet: convolutional stages with downsampling, global pooling and a linear head.

A 3x3 conv stem, ``stages`` residual stacks of ``depth`` two-conv branches
(channels ``width * 2**s``), a 2x2 average pool plus 1x1 conv between stages,
then global average pooling, RMSNorm and a linear head. Every conv, stack and
the head have mass 1; built from Modula's Conv2D atom (Large et al. 2024, §4).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from zoo import nn
from zoo.models.base import Classifier, check_sizes, compute_dtype, random_images, scan_layers


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
    """ResNet sizes: ``width`` channels in the first stage, ``depth`` blocks per stage.

    ``dtype`` is the compute dtype (:func:`~zoo.models.base.compute_dtype`; "auto" by default).
    """

    width: int = 32
    depth: int = 2
    stages: int = 3
    kernel_size: int = 3
    image_size: int = 32
    channels: int = 3
    classes: int = 10
    dtype: str = "auto"
    layer_loop: str = "auto"
    family: ClassVar[str] = "resnet"
    modality: ClassVar[str] = "image"

    def __post_init__(self):
        check_sizes(self, "width", "depth", "stages", "kernel_size", "image_size", "channels", "classes")
        if self.image_size % 2 ** (self.stages - 1):
            raise ValueError(f"resnet image_size {self.image_size} must be divisible by 2**(stages-1) = "
                             f"{2 ** (self.stages - 1)}; use fewer stages")

    def tiny(self) -> ResNetConfig:
        """This config shrunk for tests: width 4, 2 stages of 1 block, 8x8 images."""
        return dataclasses.replace(self, width=4, depth=1, stages=2, image_size=8)

    def build(self, *, rngs: nnx.Rngs) -> ResNet:
        return ResNet(self, rngs=rngs)

    def example_batch(self, batch_size: int, key: jax.Array) -> dict:
        """Standard-normal images and random labels."""
        return random_images(self, batch_size, key)


class ResNet(Classifier):
    """``model(images (B, H, W, C)) -> logits (B, classes)``."""

    def __init__(self, cfg: ResNetConfig, *, rngs: nnx.Rngs):
        self.config = cfg
        dtype = compute_dtype(cfg.dtype)
        k = cfg.kernel_size

        def conv(c_in, c_out, r, size=k):
            return nn.Conv2D(c_in, c_out, size, dtype=dtype, rngs=r)

        def branch(c):
            return lambda r: {"conv": nn.Sequential(norm=nn.RMSNorm(), conv1=conv(c, c, r), act=nn.ReLU(),
                                                    conv2=conv(c, c, r))}

        stages = {"stem": conv(cfg.channels, cfg.width, rngs)}
        for s in range(cfg.stages):
            c = cfg.width * 2 ** s
            if s:
                stages[f"down{s}"] = nn.Sequential(pool=nn.AvgPool(2), conv=conv(c // 2, c, rngs, size=1))
            stages[f"stage{s}"] = nn.Residual(branch(c), cfg.depth, mass=1.0,
                                              scan=scan_layers(cfg.layer_loop, cfg.depth), rngs=rngs)
        c_last = cfg.width * 2 ** (cfg.stages - 1)
        stages["logits"] = nn.Sequential(pool=nn.GlobalAvgPool(), norm=nn.RMSNorm(),
                                          linear=nn.Linear(c_last, cfg.classes, role="output",
                                                           axes=("conv_out", None), dtype=dtype,
                                                           out_dtype=jnp.float32, rngs=rngs))
        super().__init__(stages)
