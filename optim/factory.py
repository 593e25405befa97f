"""One entry point that builds any optimizer of the package by name."""

from __future__ import annotations

import optax

from optim.baselines import adamw
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


def build(name: str, learning_rate: optax.ScalarOrSchedule, geometry, **kwargs) -> optax.GradientTransformation:
    """``OPTIMIZERS[name](learning_rate, geometry, **kwargs)``; an unknown name
    raises a ValueError listing the names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate, geometry, **kwargs)
