"""The one train step: loss, gradients and the optimizer update, as a pure function of arrays.

The run loop, the benchmarks, the coord check and the sweeps all build their
step here, so a change to how a step is computed happens in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax
from flax import nnx


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation) -> Callable:
    """``step(params, opt_state, batch) -> (params, opt_state, metrics)`` for the model ``graphdef``.

    ``params`` is the model's state as a pure dict (``nnx.to_pure_dict``);
    ``metrics`` are those of ``model.loss(batch)``. Not jitted: callers jit it
    with their own shardings and donation.
    """

    def step(params, opt_state, batch):
        def loss_fn(p):
            return nnx.merge(graphdef, p).loss(batch)

        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return step


def make_eval_step(graphdef: nnx.GraphDef) -> Callable:
    """``evaluate(params, batch) -> metrics`` of ``model.loss`` (no gradients)."""

    def evaluate(params, batch):
        return nnx.merge(graphdef, params).loss(batch)[1]

    return evaluate
