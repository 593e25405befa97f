"""What every zoo model is: a :class:`Sequential` of named stages with a loss."""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp
import optax

from optim.dtypes import FLOAT_DTYPES
from zoo.nn import Module, Residual, Sequential


def random_images(cfg, batch_size: int, key: jax.Array) -> dict:
    """Standard-normal images of ``cfg``'s size and random labels: an image config's ``example_batch``."""
    k1, k2 = jax.random.split(key)
    shape = (batch_size, cfg.image_size, cfg.image_size, cfg.channels)
    return {"image": jax.random.normal(k1, shape, jnp.float32),
            "label": jax.random.randint(k2, (batch_size,), 0, cfg.classes, jnp.int32)}


MODALITIES = {
    "text": 'batch {"tokens": (B, T+1) int32}: T input tokens and their next-token targets; the config has '
            "`context` (T) and `vocab`; trained on a text dataset, evaluated in nats per token, sampled",
    "image": 'batch {"image": (B, H, W, C) float32, "label": (B,) int32}; trained on an image dataset, '
             "evaluated by loss and accuracy",
}
"""What a model reads: each config declares one as ``modality: ClassVar[str]``; the train loop, the
evaluation, the benchmarks and sampling dispatch on it (never on a family name)."""


def modality_of(cfg) -> str:
    """``cfg.modality``, checked against :data:`MODALITIES` (a one-line ValueError otherwise)."""
    modality = getattr(cfg, "modality", None)
    if modality not in MODALITIES:
        raise ValueError(f"{type(cfg).__name__}.modality is {modality!r}; declare one of {', '.join(MODALITIES)} "
                         "as a ClassVar on the config (zoo.models.base.MODALITIES says what each reads)")
    return modality


INT32_MAX = 2**31 - 1
"""The largest size or count a config may give: array dimensions and step counters are int32 in XLA."""


def check_sizes(cfg, *fields: str) -> None:
    """A one-line ValueError unless each of ``cfg``'s ``fields`` is a whole number >= 1, naming the field and an
    example (its default); model configs call it from ``__post_init__``, so a bad size is refused before building."""
    for name in fields:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= INT32_MAX:
            example = next(f.default for f in dataclasses.fields(cfg) if f.name == name)
            raise ValueError(f"{cfg.family} {name} must be a whole number in 1..{INT32_MAX}, got {value!r}; "
                             f"e.g. {name}={example}")


COMPUTE_DTYPES = ("auto",) + FLOAT_DTYPES


def compute_dtype(name: str) -> jnp.dtype:
    """The dtype a model config's ``dtype`` names for its activations; parameters stay float32.

    ``"auto"`` is bfloat16 on GPU and TPU, float32 elsewhere (CPU), decided
    from ``jax.default_backend()`` when the model is built; otherwise
    "float32", "bfloat16" or "float16". Logits and losses are float32 either way.
    """
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"model dtype {name!r} is unknown; choose one of {', '.join(COMPUTE_DTYPES)}")
    if name == "auto":
        return jnp.dtype(jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32)
    return jnp.dtype(name)


def masked_mean(losses: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(mean of ``losses`` weighted by ``mask``, the mask as f32, its sum); no mask weighs every entry 1."""
    mask = jnp.ones_like(losses) if mask is None else mask.astype(jnp.float32)
    return (losses * mask).sum() / jnp.maximum(mask.sum(), 1.0), mask, mask.sum()


LAYER_LOOPS = ("auto", "scan", "unroll")
UNROLL_MAX_DEPTH = 8
"""``layer_loop="auto"`` unrolls stacks of at most this many steps and scans deeper ones. Measured with
``modzoo bench compile`` (README): on XLA:CPU the unrolled step is 1.15-1.25x faster up to depth 8, no faster
at 16 and 0.75x at 32, while its compile time grows with depth (31 s at 32 against the scan's flat 5 s)."""


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


class LanguageModel(Model):
    """Causal language model of modality ``"text"``: ``model(tokens (B, T) int) -> logits (B, T, vocab)``."""

    def inputs(self, batch):
        return batch["tokens"][:, :-1]

    def init_cache(self, batch: int) -> jax.Array:
        """What :meth:`decode` carries between calls; here the token window itself, (batch, context) zeros."""
        return jnp.zeros((batch, self.config.context), jnp.int32)

    def decode(self, tokens: jax.Array, cache, position) -> tuple[jax.Array, jax.Array]:
        """Logits (B, T, vocab) of ``tokens`` (B, T) at positions ``position``.. ``position + T - 1``, and the cache
        with them written in (``position`` may be traced; ``position + T <= context``).

        This default writes the tokens into the window and reruns the whole
        model on it, which serves any causal model; models with a key/value
        cache (GPT) override it and :meth:`init_cache`.
        """
        window = jax.lax.dynamic_update_slice_in_dim(cache, tokens.astype(cache.dtype), position, axis=1)
        return jax.lax.dynamic_slice_in_dim(self(window), position, tokens.shape[1], axis=1), window

    def loss(self, batch):
        """Mean next-token cross-entropy in nats per token.

        ``batch = {"tokens": (B, T+1)}``, optionally ``"mask": (B, T)`` weighting
        each target (evaluation batches pad with zeros); ``metrics["weight"]``
        is the number of targets scored, so batch means can be pooled exactly.
        """
        tokens = batch["tokens"]
        logits = self(tokens[:, :-1]).astype(jnp.float32)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
        loss, _, weight = masked_mean(losses, batch.get("mask"))
        return loss, {"loss": loss, "weight": weight}


class Classifier(Model):
    """Image classifier of modality ``"image"``: batch ``{"image": (B, H, W, C) float, "label": (B,) int}``."""

    def inputs(self, batch):
        return batch["image"]

    def loss(self, batch):
        """Mean cross-entropy; an optional ``"mask": (B,)`` weights examples (padding = 0)."""
        logits = self(batch["image"]).astype(jnp.float32)
        labels = batch["label"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        loss, mask, weight = masked_mean(losses, batch.get("mask"))
        accuracy = ((logits.argmax(-1) == labels) * mask).sum() / jnp.maximum(weight, 1.0)
        return loss, {"loss": loss, "accuracy": accuracy, "weight": weight}
