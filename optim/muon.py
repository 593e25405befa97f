"""Muon baseline (Jordan 2024, modded-nanogpt; Bernstein & Newhouse 2024,
"Old Optimizer, New Norm"): Nesterov momentum β = 0.95, then Newton–Schulz,
scaled by max(1, d_out/d_in)^0.5, on hidden matrices and conv kernels (the
kernel flattened to (k·k·c_in, c_out), as in Jordan's CIFAR-10 speedrun);
AdamW on embeddings, the output layer, gains and biases.

Built from ``optax.partition`` over labels read from each parameter's
geometry role (never from ndim or names) and this package's one
:func:`optim.orthogonalize` (run in float32 whatever the parameter dtype),
rather than ``optax.contrib.muon``: that keeps one Newton–Schulz kernel in the
project, so timings and accuracy compare like with like across Scion,
normalized and Muon, and avoids contrib's defaults of sending every 2-D leaf
(embedding and head included) to Muon and using NAdamW for the rest.
"""

from __future__ import annotations

import math

import jax
import optax

from optim import geometry as geometry_lib
from optim import lmo
from optim.dtypes import float_dtype
from optim.newton_schulz import resolve

MUON_ROLES = ("hidden", "conv")


def _muon_scale(d_in: int, d_out: int) -> float:
    return math.sqrt(max(1.0, d_out / d_in))


HIDDEN = lmo.PolarMap(lmo.as_matrices, lambda shape: _muon_scale(*shape[-2:]))
"""Muon's direction of a (..., d_in, d_out) kernel: NS(u)·max(1, d_out/d_in)^0.5."""
CONV = lmo.PolarMap(lmo.taps_flattened, lambda shape: _muon_scale(math.prod(shape[-4:-1]), shape[-1]))
"""Muon's direction of a (..., k, k, c_in, c_out) kernel, as the (k·k·c_in, c_out) matrix."""


def scale_by_orthogonalized(geometry, *, ns_coeffs="muon", ns_steps: int | None = None) -> optax.GradientTransformation:
    """Muon's direction: NS(u)·max(1, d_out/d_in)^0.5 for each leaf; conv
    kernels as (k·k·c_in, c_out) matrices. All matrices of one shape (up to a
    transpose) go through one Newton–Schulz call (:func:`optim.lmo.apply_all`).
    ``geometry`` pairs with exactly the leaves this transformation sees."""
    resolve(ns_coeffs, ns_steps)
    geos = geometry_lib.leaves(geometry)
    maps = [CONV if geo.role == "conv" else HIDDEN for geo in geos]

    def update_fn(updates, state, params=None):
        del params
        leaves, _, treedef = geometry_lib.pair(updates, geos)
        return jax.tree.unflatten(treedef, lmo.apply_all(maps, leaves, coeffs=ns_coeffs, steps=ns_steps)), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def muon(
    learning_rate: optax.ScalarOrSchedule,
    geometry,
    *,
    beta: float = 0.95,
    nesterov: bool = True,
    weight_decay: float = 0.0,
    ns_coeffs="muon",
    ns_steps: int | None = None,
    adam_learning_rate: optax.ScalarOrSchedule | None = None,
    adam_b1: float = 0.9,
    adam_b2: float = 0.95,
    adam_eps: float = 1e-8,
    adam_weight_decay: float = 0.0,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Muon on hidden/conv leaves, AdamW on the rest, routed by geometry role.

    Args:
      learning_rate: Muon's step size (float or schedule).
      geometry: geometry tree pairing with the parameters by leaf order.
      beta, nesterov: Muon's momentum (``optax.trace``).
      weight_decay: decoupled decay of the Muon leaves (times the learning rate).
      ns_coeffs, ns_steps: Newton–Schulz preset (Jordan's quintic by default).
      adam_learning_rate: AdamW's step size (default: ``learning_rate``).
      adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's settings.
      mu_dtype: storage dtype of Muon's momentum and AdamW's first moment
        (None: the parameters'); each step is computed from them in float32.
    """
    mu_dtype = float_dtype(mu_dtype, "muon's mu_dtype")
    geos = geometry_lib.leaves(geometry)
    muon_geos = [g for g in geos if g.role in MUON_ROLES]

    def labels(tree):
        _, _, treedef = geometry_lib.pair(tree, geos, "params")
        return jax.tree.unflatten(treedef, ["muon" if g.role in MUON_ROLES else "adam" for g in geos])

    no_decay = isinstance(weight_decay, (int, float)) and weight_decay == 0
    decay = [] if no_decay else [optax.add_decayed_weights(weight_decay)]
    return optax.partition(
        {
            "muon": optax.chain(
                optax.trace(decay=beta, nesterov=nesterov, accumulator_dtype=mu_dtype),
                scale_by_orthogonalized(muon_geos, ns_coeffs=ns_coeffs, ns_steps=ns_steps),
                *decay,
                optax.scale_by_learning_rate(learning_rate),
            ),
            "adam": optax.adamw(
                learning_rate if adam_learning_rate is None else adam_learning_rate,
                b1=adam_b1,
                b2=adam_b2,
                eps=adam_eps,
                weight_decay=adam_weight_decay,
                mu_dtype=mu_dtype,
            ),
        },
        labels,
    )
