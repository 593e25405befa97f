"""Pairing a parameter-shaped tree with its geometry tree, by flattened leaf order.

optax hands a transformation Param-wrapped nodes at init time and plain arrays
at update time (flax NNX), and a functional train step hands plain arrays to
both; the leaves come in the same order in every case. So geometry is matched
to arrays by position in ``jax.tree.leaves`` and every result is rebuilt with
the treedef of the tree that came in.
"""

from __future__ import annotations

import jax

from optim.geometry import Geometry, is_geometry
from optim.norms import core_ndim


def geometry_leaves(geometry) -> list[Geometry]:
    """The :class:`Geometry` leaves of a geometry tree, in flattened order."""
    leaves = jax.tree.leaves(geometry, is_leaf=is_geometry)
    for leaf in leaves:
        if not is_geometry(leaf):
            raise TypeError(
                f"geometry tree holds a {type(leaf).__name__}, not an optim.geometry.Geometry; "
                "pass zoo.geometry(model)"
            )
    return leaves


def _expected_shape(geo: Geometry) -> str:
    core = core_ndim(geo.norm)
    tail = (geo.fan_out,) if core == 1 else (geo.fan_in, geo.fan_out)
    lead = ("*",) * (core - len(tail))
    return f"({', '.join(['L'] * geo.stack_ndim + list(lead) + [str(t) for t in tail])})"


def _matches(shape: tuple[int, ...], geo: Geometry) -> bool:
    core = core_ndim(geo.norm)
    if len(shape) != geo.stack_ndim + core:
        return False
    if core == 1:
        return shape[-1] == geo.fan_out
    return tuple(shape[-2:]) == (geo.fan_in, geo.fan_out)


def pair(tree, geometry: list[Geometry], what: str = "updates"):
    """Flatten ``tree``, check it against ``geometry`` leaf by leaf.

    Returns (leaves, treedef); raise ValueError naming the first mismatch.
    """
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    if len(with_path) != len(geometry):
        raise ValueError(
            f"geometry tree has {len(geometry)} leaves but the {what} have {len(with_path)}; "
            "build the geometry with zoo.geometry(model) from the same model the parameters come from"
        )
    for (path, x), geo in zip(with_path, geometry):
        if not _matches(x.shape, geo):
            raise ValueError(
                f"{what} leaf {jax.tree_util.keystr(path)} has shape {tuple(x.shape)} but its geometry "
                f"(role {geo.role!r}, norm {geo.norm!r}) expects {_expected_shape(geo)}; "
                "the geometry tree does not match the parameters: rebuild it with zoo.geometry(model)"
            )
    return [x for _, x in with_path], treedef
