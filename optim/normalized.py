"""Any optax direction, normalized in the modular norm (Large et al. 2024,
"Scalable Optimization in the Modular Norm", §3 and Prop. 3).

Each atom k's update u_k (from ``base``: Adam's, SGD-momentum's, ...) is made
unit-size in the atom's own norm (:mod:`optim.norms`) and multiplied by
``learning_rate · c_k`` (c_k = ``geometry.multiplier``), so the modular norm of
the whole update, max_k ‖Δw_k‖ / c_k, equals the learning rate.

Two ways to make u_k unit-size (``form``):

* ``"dual"``: the atom norm's dual map, the unit-norm steepest direction
  (:func:`dual`): sqrt(d_out/d_in)·UVᵀ for spectral atoms, the same per tap
  divided by k² for conv atoms, rows of RMS 1 for embeddings, u/RMS(u) for
  vectors (Modula v2). Every spectral and conv atom whose matrices have one
  shape (up to a transpose) goes through one Newton–Schulz call
  (:func:`optim.lmo.apply_all`).
* ``"scaled"``: u_k divided by its atom norm, keeping its direction (Modula
  v1). Spectral and conv norms are estimated by one warm-started
  power-iteration step per call; the iteration vectors live in the optimizer
  state, so they are checkpointed. The estimate is never above the norm and
  never below norm/sqrt(min(d_in, d_out)) (:meth:`optim.norms.Spectral.estimate`
  derives both), so each such update is between 1 and sqrt(min(d_in, d_out))
  times its target, whatever the vector; the upper end can only matter while
  the vector is still far from the top singular vector (the first updates).
  Embedding and RMS norms are exact. Each atom is first divided by its
  largest entry, so the result is the same at any scale of u_k (1e-30 or
  1e30) and never overflows or underflows.

``weight_decay`` λ adds the modular counterpart of decoupled weight decay:
Δw_k = −η·c_k·(unit(u_k) + λ·w_k). The decay is scaled per atom like the
update, so an atom's norm settles at most at 1/λ, the norm the initializers of
:mod:`optim.norms` give every atom when λ = 1 (the Frank–Wolfe reading of
decoupled decay, as in Scion's SCG).

``mu_dtype`` of :func:`normalized_adam` and :func:`normalized_sgd` stores the
first moment (the momentum trace) in that dtype, e.g. bfloat16; optax computes
each step from it in float32 before casting it back. Adam's second moment
stays in the parameters' dtype: with β₂ = 0.99 a step moves it by about 1%,
which bfloat16 (relative rounding error up to 2⁻⁸ ≈ 0.4%) would largely
round away.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optim import geometry as geometry_lib
from optim import lmo, norms
from optim.dtypes import float_dtype
from optim.magnitude import max_scaled
from optim.newton_schulz import resolve

FORMS = ("dual", "scaled")
DEFAULT_NS_PRESET = "six_step"
"""Newton–Schulz preset of the dual form. The modular norm of a dualized update
is its largest singular value, which must land on the target: six_step puts it
in [0.996, 0.999] (for σ ≥ 1e-2·‖G‖_F, always true of the largest), while the
five-step presets' bands reach 1.14."""


def dual(norm: str, g: jax.Array, *, ns_coeffs=DEFAULT_NS_PRESET, ns_steps: int | None = None) -> jax.Array:
    """The unit-norm steepest direction of ``g`` in the atom norm ``norm`` (its
    dual map; Large et al. 2024, §3.2), per stacked slice; zero maps to zero."""
    return norms.get(norm).dual(g, ns_coeffs=ns_coeffs, ns_steps=ns_steps)


class ModularNormState(NamedTuple):
    """Power-iteration vectors, one per spectral or conv leaf in flattened
    order (form "scaled"; empty for "dual")."""

    vectors: tuple[jax.Array, ...]


def _statically_zero(x) -> bool:
    return isinstance(x, (int, float)) and x == 0


def scale_by_modular_norm(
    geometry,
    *,
    form: str = "dual",
    weight_decay: float = 0.0,
    ns_coeffs=DEFAULT_NS_PRESET,
    ns_steps: int | None = None,
) -> optax.GradientTransformation:
    """Make each atom's update unit-size in its norm and multiply by c_k
    (plus c_k·λ·w_k when ``weight_decay`` λ is set).

    ``optax.scale_by_learning_rate(η)`` after it gives an update of modular
    norm η. See the module docstring for ``form``.
    """
    if form not in FORMS:
        raise ValueError(f"unknown normalization form {form!r}; choose one of {FORMS}")
    resolve(ns_coeffs, ns_steps)
    geos = geometry_lib.leaves(geometry)
    powered = [i for i, g in enumerate(geos) if form == "scaled" and g.atom_norm.powered]

    def init_fn(params):
        leaves, _, _ = geometry_lib.pair(params, geos, "params")
        key = jax.random.key(0)
        return ModularNormState(tuple(geos[i].atom_norm.first_vector(jax.random.fold_in(key, i), leaves[i].shape)
                                      for i in powered))

    def scaled(xs, vectors):
        """(each x divided by its atom norm, the next power vectors)."""
        vectors, out = dict(zip(powered, vectors)), []
        for i, (x, geo) in enumerate(zip(xs, geos)):
            norm = geo.atom_norm
            x, _ = max_scaled(x, tuple(range(-norm.core_ndim, 0)))  # norms are homogeneous: unit(x) = unit(x/max|x|)
            value, vectors[i] = norm.estimate(x, vectors.get(i))
            value = value.reshape(value.shape + (1,) * norm.core_ndim)
            out.append(x / jnp.where(value > 0, value, 1.0))
        return out, tuple(vectors[i] for i in powered)

    def update_fn(updates, state, params=None):
        leaves, _, treedef = geometry_lib.pair(updates, geos)
        xs = [u.astype(jnp.float32) for u in leaves]
        if form == "dual":
            directions, vectors = lmo.apply_all([geo.atom_norm.dual_map for geo in geos], xs,
                                                coeffs=ns_coeffs, steps=ns_steps), state.vectors
        else:
            directions, vectors = scaled(xs, state.vectors)
        out = [geo.multiplier * direction for direction, geo in zip(directions, geos)]
        if not _statically_zero(weight_decay):
            if params is None:
                raise ValueError("weight_decay needs the parameters: call tx.update(grads, state, params)")
            out = [
                o + geo.multiplier * weight_decay * w.astype(jnp.float32)
                for o, geo, w in zip(out, geos, jax.tree.leaves(params))
            ]
        out = [o.astype(u.dtype) for o, u in zip(out, leaves)]
        return jax.tree.unflatten(treedef, out), ModularNormState(vectors)

    return optax.GradientTransformation(init_fn, update_fn)


def normalized(
    base: optax.GradientTransformation,
    geometry,
    learning_rate: optax.ScalarOrSchedule,
    *,
    form: str = "dual",
    weight_decay: float = 0.0,
    ns_coeffs=DEFAULT_NS_PRESET,
    ns_steps: int | None = None,
) -> optax.GradientTransformation:
    """``base`` normalized in the modular norm, with step size ``learning_rate``.

    Args:
      base: an optax transformation giving a descent direction before any
        learning rate, e.g. ``optax.scale_by_adam()`` or ``optax.trace(0.9)``
        (not ``optax.adam(lr)``, whose negated output would be ascended).
      geometry: geometry tree pairing with the parameters by leaf order
        (``zoo.geometry(model)``).
      learning_rate: target modular norm of each update (float or schedule).
      form: "dual" or "scaled" (module docstring).
      weight_decay: λ of the per-atom decoupled decay (needs params).
      ns_coeffs, ns_steps: Newton–Schulz preset of the dual form.
    """
    return optax.chain(
        base,
        scale_by_modular_norm(
            geometry, form=form, weight_decay=weight_decay, ns_coeffs=ns_coeffs, ns_steps=ns_steps
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


def normalized_adam(
    learning_rate: optax.ScalarOrSchedule,
    geometry,
    *,
    b1: float = 0.9,
    b2: float = 0.99,
    eps: float = 1e-8,
    form: str = "dual",
    weight_decay: float = 0.0,
    ns_coeffs=DEFAULT_NS_PRESET,
    ns_steps: int | None = None,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Normalized Adam (Large et al. 2024, §4: β = (0.9, 0.99)); the rest as in :func:`normalized`.

    ``mu_dtype``: the first moment's storage dtype (None: the parameters'; module docstring).
    """
    return normalized(
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps, mu_dtype=float_dtype(mu_dtype, "normalized_adam's mu_dtype")),
        geometry,
        learning_rate,
        form=form,
        weight_decay=weight_decay,
        ns_coeffs=ns_coeffs,
        ns_steps=ns_steps,
    )


def normalized_sgd(
    learning_rate: optax.ScalarOrSchedule,
    geometry,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    form: str = "dual",
    weight_decay: float = 0.0,
    ns_coeffs=DEFAULT_NS_PRESET,
    ns_steps: int | None = None,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """Normalized SGD with momentum (Large et al. 2024, §4: 0.9); the rest as in :func:`normalized`.

    ``mu_dtype``: the momentum trace's storage dtype (None: the parameters'; module docstring).
    """
    return normalized(
        optax.trace(decay=momentum, nesterov=nesterov,
                    accumulator_dtype=float_dtype(mu_dtype, "normalized_sgd's mu_dtype")),
        geometry,
        learning_rate,
        form=form,
        weight_decay=weight_decay,
        ns_coeffs=ns_coeffs,
        ns_steps=ns_steps,
    )
