"""The one place an optimizer is built: by name, or from a plain dict of settings.

``build(name, learning_rate, geometry, **kwargs)`` builds one optimizer of
:data:`OPTIMIZERS`. ``from_settings(settings, geometry, steps)`` builds what a
training run uses (big_vision's ``optax.py`` pattern), from a dict such as::

    {"name": "scion", "learning_rate": 0.05, "warmup_steps": 0, "decay_fraction": 1.0,
     "clip_norm": None, "scion": {"momentum": 0.1}}

the named optimizer with its own section's keywords, the learning-rate
schedule of :func:`schedule` and optional global-norm clipping. The peak
learning rate lives in the optimizer state (``optax.inject_hyperparams``), so
runs that differ only in their rate share one compiled train step; read it
with :func:`peak_learning_rate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax.numpy as jnp
import optax

from optim.adamw import adamw
from optim.muon import muon
from optim.normalized import normalized_adam, normalized_sgd
from optim.scion import scion

OPTIMIZERS = {
    "scion": scion,
    "normalized_adam": normalized_adam,
    "normalized_sgd": normalized_sgd,
    "muon": muon,
    "adamw": adamw,
}
SETTINGS = ("name", "learning_rate", "warmup_steps", "decay_fraction", "clip_norm")
"""The shared keys of a settings dict; every other key is one optimizer's own section."""


def build(name: str, learning_rate: optax.ScalarOrSchedule, geometry, **kwargs) -> optax.GradientTransformation:
    """``OPTIMIZERS[name](learning_rate, geometry, **kwargs)``; an unknown name
    raises a ValueError listing the names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[name](learning_rate, geometry, **kwargs)


def schedule(steps: int, *, warmup_steps: int = 0, decay_fraction: float = 1.0) -> optax.Schedule:
    """Learning-rate shape of peak 1: linear warmup over ``warmup_steps``, constant, then linear
    decay to 0 over the last ``decay_fraction`` of ``steps`` (warmup-stable-decay; decay_fraction 1
    is plain linear decay, 0 a constant rate)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0 <= decay_fraction <= 1:
        raise ValueError(f"decay_fraction must be in [0, 1], got {decay_fraction}")
    if not 0 <= warmup_steps < steps:
        raise ValueError(f"warmup_steps must be in [0, steps), got {warmup_steps} for {steps} steps")
    decay = max(int(round(decay_fraction * steps)), 1) if decay_fraction > 0 else 0
    decay = min(decay, steps - warmup_steps)
    pieces, boundaries = [], []
    if warmup_steps:
        pieces.append(optax.linear_schedule(0.0, 1.0, warmup_steps))
        boundaries.append(warmup_steps)
    flat = steps - warmup_steps - decay
    if flat > 0:
        pieces.append(optax.constant_schedule(1.0))
        boundaries.append(warmup_steps + flat)
    pieces.append(optax.linear_schedule(1.0, 0.0, decay) if decay else optax.constant_schedule(1.0))
    return optax.join_schedules(pieces, boundaries) if boundaries else pieces[0]


def check_settings(settings: Mapping) -> None:
    """A one-line ValueError for a settings dict :func:`from_settings` cannot build: unknown name, a learning
    rate that is not a finite positive number, a clip norm that is not positive."""
    name = settings.get("name")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(sorted(OPTIMIZERS))}")
    lr = settings.get("learning_rate")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr < math.inf:
        raise ValueError(f"learning_rate must be a finite positive number, got {lr!r}")
    clip = settings.get("clip_norm")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip_norm must be positive or None, got {clip!r}")


def from_settings(settings: Mapping, geometry, steps: int) -> optax.GradientTransformation:
    """The run's optimizer from a settings dict (module docstring) over ``steps`` steps.

    Each update is ``peak · schedule(count)`` times the named optimizer's
    direction, after clipping to ``clip_norm`` if set. ``peak`` starts at
    ``settings["learning_rate"]`` and is stored in the state, so a compiled
    update serves any rate.
    """
    check_settings(settings)
    name = settings["name"]
    own = dict(settings.get(name) or {})
    shape = schedule(steps, warmup_steps=int(settings.get("warmup_steps") or 0),
                     decay_fraction=float(settings.get("decay_fraction", 1.0)))
    clip = settings.get("clip_norm")

    def scheduled(learning_rate):
        tx = build(name, lambda count: learning_rate * shape(count), geometry, **own)
        return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx

    return optax.inject_hyperparams(scheduled)(learning_rate=float(settings["learning_rate"]))


def learning_rate_at(settings: Mapping, steps: int, count: int) -> float:
    """The rate :func:`from_settings` applies at update ``count`` (0-based), for logging."""
    shape = schedule(steps, warmup_steps=int(settings.get("warmup_steps") or 0),
                     decay_fraction=float(settings.get("decay_fraction", 1.0)))
    return float(settings["learning_rate"]) * float(shape(count))


def peak_learning_rate(state) -> jnp.ndarray:
    """The peak rate held in a :func:`from_settings` optimizer state."""
    return state.hyperparams["learning_rate"]
