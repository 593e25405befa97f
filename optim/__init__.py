"""Optimizers that read each parameter's modular-norm geometry.

jax and optax only (never flax, never zoo). Every optimizer is an
``optax.GradientTransformation`` built from a learning rate and a geometry
tree (``zoo.geometry(model)``) that pairs with the parameters by leaf order.
"""

from optim import geometry, lmo, norms
from optim.adamw import adamw
from optim.builder import OPTIMIZERS, build, from_settings, learning_rate_at, peak_learning_rate, schedule
from optim.muon import muon
from optim.newton_schulz import DEFAULT_PRESET, PRESETS, orthogonalize
from optim.normalized import dual, normalized, normalized_adam, normalized_sgd, scale_by_modular_norm
from optim.scion import scale_by_scion, scion, scion_init

__all__ = [
    "DEFAULT_PRESET",
    "OPTIMIZERS",
    "PRESETS",
    "adamw",
    "build",
    "dual",
    "from_settings",
    "geometry",
    "learning_rate_at",
    "lmo",
    "muon",
    "normalized",
    "normalized_adam",
    "normalized_sgd",
    "norms",
    "orthogonalize",
    "peak_learning_rate",
    "scale_by_modular_norm",
    "scale_by_scion",
    "schedule",
    "scion",
    "scion_init",
]
