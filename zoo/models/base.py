"""What every zoo model is: a :class:`Sequential` of named stages with a loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from zoo.nn import Module, Residual, Sequential


def random_images(cfg, batch_size: int, key: jax.Array) -> dict:
    """Standard-normal images of ``cfg``'s size and random labels: an image config's ``example_batch``."""
    k1, k2 = jax.random.split(key)
    shape = (batch_size, cfg.image_size, cfg.image_size, cfg.channels)
    return {"image": jax.random.normal(k1, shape, jnp.float32),
            "label": jax.random.randint(k2, (batch_size,), 0, cfg.classes, jnp.int32)}


LAYER_LOOPS = ("auto", "scan", "unroll")
UNROLL_MAX_DEPTH = 16
"""``layer_loop="auto"`` unrolls stacks of at most this many steps and scans deeper ones (measured: see README)."""


def scan_layers(layer_loop: str, depth: int) -> bool:
    """Whether a residual stack of ``depth`` steps is scanned (``nnx.scan``) or unrolled, per ``layer_loop``."""
    if layer_loop not in LAYER_LOOPS:
        raise ValueError(f"unknown layer_loop {layer_loop!r}; choose one of {LAYER_LOOPS}")
    if layer_loop == "auto":
        return depth > UNROLL_MAX_DEPTH
    return layer_loop == "scan"


class Model(Sequential):
    """A model whose root is a composition of named stages.

    Subclasses give ``loss(batch) -> (scalar, metrics)``; ``activations``
    returns every stage's output (each residual step separately) for the
    coord check.
    """

    def __init__(self, stages: dict[str, Module]):
        super().__init__(**stages)

    def inputs(self, batch: dict) -> jax.Array:
        raise NotImplementedError

    def activations(self, x: jax.Array) -> dict[str, jax.Array]:
        """Outputs of each stage in order; a Residual stage gives ``name.i`` per step."""
        out = {}
        for name, layer in zip(self.child_names, self._children()):
            if isinstance(layer, Residual):
                x, steps = layer.trace(x)
                for i in range(steps.shape[0]):
                    out[f"{name}.{i}"] = steps[i]
            else:
                x = layer(x)
                out[name] = x
        return out


class Classifier(Model):
    """Image classifier: batch ``{"image": (B, H, W, C) float, "label": (B,) int}``."""

    def inputs(self, batch):
        return batch["image"]

    def loss(self, batch):
        """Mean cross-entropy; an optional ``"mask": (B,)`` weights examples (padding = 0)."""
        logits = self(batch["image"]).astype(jnp.float32)
        labels = batch["label"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        mask = batch.get("mask")
        mask = jnp.ones_like(losses) if mask is None else mask.astype(jnp.float32)
        weight = jnp.maximum(mask.sum(), 1.0)
        loss = (losses * mask).sum() / weight
        accuracy = ((logits.argmax(-1) == labels) * mask).sum() / weight
        return loss, {"loss": loss, "accuracy": accuracy, "weight": mask.sum()}
