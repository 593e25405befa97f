"""The per-parameter geometry record that every optimizer in `optim` reads.

A model describes each of its parameters with one :class:`Geometry` (Large et
al. 2024, "Scalable Optimization in the Modular Norm", §3): which atom it
belongs to, the norm of that atom, its fan-in and fan-out, its mass and
sensitivity, and the multiplier ``c_k`` that the modular norm gives it.
Optimizers receive a tree of these records with the structure of the
parameter tree, built once when the model is built (optax only ever sees
plain arrays at update time).

Array layouts (leading ``"layers"`` axes are stacked copies, one atom each):

============  ===============================  =====================
role          array shape                      fan_in, fan_out
============  ===============================  =====================
embedding     (*stack, vocab, d)               vocab, d
hidden        (*stack, d_in, d_out)            d_in, d_out
output        (*stack, d_in, d_out)            d_in, d_out
conv          (*stack, k, k, c_in, c_out)      c_in, c_out
gain, bias    (*stack, d)                      d, d
============  ===============================  =====================
"""

from __future__ import annotations

import dataclasses

import jax

from optim import norms

ROLES = ("embedding", "hidden", "output", "conv", "gain", "bias")
STACK_AXIS = "layers"


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Modular-norm geometry of one parameter array (a pytree leaf, not a node).

    Attributes:
      role: what the parameter does; Scion picks its LMO from it.
      norm: the atom's norm (see :mod:`optim.norms`); normalized optimizers
        dualize in it.
      fan_in, fan_out: the atom's input and output dimensions.
      mass: share of feature learning the atom asks for (Large et al. §3.1).
      sensitivity: how much the atom's output moves when its input moves.
      multiplier: ``c_k``, the product along the path from the model's root of
        (child mass / parent mass) / (sensitivity of what runs after it); a
        normalized update gives this atom ``t * c_k`` in its own norm and the
        modular norm of the weights is ``max_k ||w_k|| / c_k``.
      axes: one logical axis name per array dimension (``"layers"`` for
        stacked copies, then e.g. ``"vocab"``, ``"embed"``, ``"mlp"``,
        ``"heads"``, ``"conv_in"``, ``"conv_out"``, or ``None``); the train
        script maps them onto mesh axes.
    """

    role: str
    norm: str
    fan_in: int
    fan_out: int
    mass: float
    sensitivity: float
    multiplier: float
    axes: tuple[str | None, ...]

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {ROLES}")
        norms.get(self.norm)  # raises on an unknown norm

    @property
    def stack_ndim(self) -> int:
        """Number of leading stacked ("layers") axes."""
        n = 0
        while n < len(self.axes) and self.axes[n] == STACK_AXIS:
            n += 1
        return n


    @property
    def atom_norm(self) -> norms.AtomNorm:
        """The :class:`optim.norms.AtomNorm` this parameter is measured in."""
        return norms.get(self.norm)

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of ``shape`` is this parameter: stacked axes, then the atom's core with its fans."""
        core = self.atom_norm.core_ndim
        if len(shape) != self.stack_ndim + core:
            return False
        return shape[-1] == self.fan_out if core == 1 else tuple(shape[-2:]) == (self.fan_in, self.fan_out)

    def expected_shape(self) -> str:
        """The shape :meth:`fits` accepts, written out for error messages (``L`` a stacked axis)."""
        core = self.atom_norm.core_ndim
        tail = [str(self.fan_out)] if core == 1 else [str(self.fan_in), str(self.fan_out)]
        return f"({', '.join(['L'] * self.stack_ndim + ['*'] * (core - len(tail)) + tail)})"


def is_geometry(x) -> bool:
    """True for a :class:`Geometry` leaf (use as ``is_leaf`` in tree maps)."""
    return isinstance(x, Geometry)


def leaves(geometry) -> list[Geometry]:
    """The :class:`Geometry` leaves of a geometry tree (or list), in flattened order."""
    out = jax.tree.leaves(geometry, is_leaf=is_geometry)
    for leaf in out:
        if not is_geometry(leaf):
            raise TypeError(f"geometry tree holds a {type(leaf).__name__}, not an optim.geometry.Geometry; "
                            "pass zoo.geometry(model)")
    return out


def pair(tree, geometry, what: str = "updates"):
    """Flatten ``tree`` and check it against ``geometry`` (a tree or a list of leaves) leaf by leaf.

    Parameter trees and their geometry pair by position in ``jax.tree.leaves``
    (optax hands transformations Param-wrapped nodes at init and plain arrays
    at update time, in the same leaf order). Returns ``(leaves, geometry
    leaves, treedef)``; raises a ValueError naming the first mismatch.
    """
    geos = leaves(geometry)
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    if len(with_path) != len(geos):
        raise ValueError(f"geometry tree has {len(geos)} leaves but the {what} have {len(with_path)}; build the "
                         "geometry with zoo.geometry(model) from the same model the parameters come from")
    for (path, x), geo in zip(with_path, geos):
        if not geo.fits(tuple(x.shape)):
            raise ValueError(
                f"{what} leaf {jax.tree_util.keystr(path)} has shape {tuple(x.shape)} but its geometry "
                f"(role {geo.role!r}, norm {geo.norm!r}) expects {geo.expected_shape()}; "
                "the geometry tree does not match the parameters: rebuild it with zoo.geometry(model)")
    return [x for _, x in with_path], geos, treedef
