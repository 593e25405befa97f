"""The one train step: loss, gradients and the optimizer update, as a pure function of arrays.

The run loop, the benchmarks, the coord check and the sweeps all build their
step here, so a change to how a step is computed happens in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, *,
                    skip_nonfinite: bool = False) -> Callable:
    """``step(params, opt_state, batch) -> (params, opt_state, metrics)`` for the model ``graphdef``.

    ``params`` is the model's state as a pure dict (``nnx.to_pure_dict``);
    ``metrics`` are those of ``model.loss(batch)`` plus ``grad_norm`` (global
    L2 norm of the gradients) and ``finite``: whether the loss, that norm and
    every float of the new params and optimizer state are finite (one boolean
    the loop can check at every step without reading the state back).
    ``skip_nonfinite``: when not ``finite``, return the old params and
    optimizer state unchanged (the update is not applied). Not jitted:
    callers jit it with their own shardings and donation.
    """

    def step(params, opt_state, batch):
        def loss_fn(p):
            return nnx.merge(graphdef, p).loss(batch)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & _all_finite((new_params, new_opt_state))
        if skip_nonfinite:
            new_params, new_opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                                     (new_params, new_opt_state), (params, opt_state))
        return new_params, new_opt_state, {**metrics, "grad_norm": grad_norm, "finite": finite}

    return step


def _all_finite(tree) -> jax.Array:
    """One traced boolean: every float leaf of ``tree`` is finite (integer leaves always are)."""
    flags = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.array(True)


def make_eval_step(graphdef: nnx.GraphDef) -> Callable:
    """``evaluate(params, batch) -> metrics`` of ``model.loss`` (no gradients)."""

    def evaluate(params, batch):
        return nnx.merge(graphdef, params).loss(batch)[1]

    return evaluate
