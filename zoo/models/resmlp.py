"""ResMLP: a residual MLP on flattened images (Large et al. 2024, §4 CIFAR-10 experiments).

Input linear layer (mass 1), a residual stack of ``depth`` two-layer MLP
branches (mass 1), an RMS-normed linear head (mass 1). Multipliers: input
and head 1/3, each hidden layer 1/6, at any depth.
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
class ResMLPConfig:
    """ResMLP sizes for (image_size, image_size, channels) inputs and ``classes`` outputs.

    ``dtype`` is the compute dtype (:func:`~zoo.models.base.compute_dtype`; "auto" by default).
    """

    width: int = 256
    depth: int = 2
    image_size: int = 32
    channels: int = 3
    classes: int = 10
    dtype: str = "auto"
    layer_loop: str = "auto"
    family: ClassVar[str] = "resmlp"
    modality: ClassVar[str] = "image"

    def __post_init__(self):
        check_sizes(self, "width", "depth", "image_size", "channels", "classes")

    def tiny(self) -> ResMLPConfig:
        """This config shrunk for tests: width 32, 2 blocks, 8x8 images."""
        return dataclasses.replace(self, width=32, depth=2, image_size=8)

    def build(self, *, rngs: nnx.Rngs) -> ResMLP:
        return ResMLP(self, rngs=rngs)

    def example_batch(self, batch_size: int, key: jax.Array) -> dict:
        """Standard-normal images and random labels."""
        return random_images(self, batch_size, key)


class ResMLP(Classifier):
    """``model(images (B, H, W, C)) -> logits (B, classes)``."""

    def __init__(self, cfg: ResMLPConfig, *, rngs: nnx.Rngs):
        self.config = cfg
        dtype = compute_dtype(cfg.dtype)
        d_in = cfg.image_size * cfg.image_size * cfg.channels
        w = cfg.width

        def branch(r):
            return {"mlp": nn.Sequential(center=nn.MeanSubtract(), norm=nn.RMSNorm(),
                                         up=nn.Linear(w, w, axes=("embed", "mlp"), dtype=dtype, rngs=r),
                                         act=nn.ReLU(),
                                         down=nn.Linear(w, w, axes=("mlp", "embed"), dtype=dtype, rngs=r))}

        super().__init__({
            "input": nn.Sequential(flatten=nn.Flatten(),
                                   linear=nn.Linear(d_in, w, axes=(None, "embed"), dtype=dtype, rngs=rngs)),
            "blocks": nn.Residual(branch, cfg.depth, mass=1.0, scan=scan_layers(cfg.layer_loop, cfg.depth),
                                    rngs=rngs),
            "logits": nn.Sequential(norm=nn.RMSNorm(),
                                    linear=nn.Linear(w, cfg.classes, role="output", axes=("embed", None),
                                                     dtype=dtype, out_dtype=jnp.float32, rngs=rngs)),
        })
