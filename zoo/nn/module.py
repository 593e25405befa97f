"""The base class of the modular-norm algebra (Large et al. 2024, §3).

Every :class:`Module` has a *mass* and a *sensitivity*, and knows how a
normalized update of target size ``t`` given to it is shared among its
children (Large et al. 2024, §3 and App. B: composition, concatenation,
scalar multiple, residual stack). Atoms (modules with weights) end the recursion: the target
they receive is their multiplier ``c_k``. :func:`assign_geometry` walks a
model from its root once, after construction, and writes mass and multiplier
into every parameter's metadata.
"""

from __future__ import annotations

from collections.abc import Iterator

from flax import nnx


class Module(nnx.Module):
    """A module with a mass and a sensitivity (Large et al. 2024, Def. 3)."""

    def mass(self) -> float:
        raise NotImplementedError

    def sensitivity(self) -> float:
        raise NotImplementedError

    def shares(self, target: float) -> Iterator[tuple[Module, float, float]]:
        """Yield ``(child, child_target, child_mass_fraction)`` for each child.

        ``child_mass_fraction`` is the child's share of this module's mass,
        used to report each atom's absolute mass.
        """
        return iter(())


class Bond(Module):
    """A module without weights: mass 0, sensitivity 1 unless the subclass says otherwise."""

    def mass(self) -> float:
        return 0.0

    def sensitivity(self) -> float:
        return 1.0


class Atom(Module):
    """A module with weights. Its parameters carry their geometry as metadata."""

    def __init__(self, mass: float):
        if mass < 0:
            raise ValueError(f"an atom's mass must be >= 0, got {mass}")
        self._mass = float(mass)

    def mass(self) -> float:
        return self._mass

    def sensitivity(self) -> float:
        return 1.0

    def params(self) -> Iterator[nnx.Param]:
        """This atom's parameters (each gets the atom's multiplier)."""
        for _, value in nnx.iter_graph(self):
            if isinstance(value, nnx.Param):
                yield value


def assign_geometry(root: Module) -> Module:
    """Write ``mass`` and ``multiplier`` metadata into every parameter of ``root``.

    The root gets target 1, so each atom's multiplier is the closed-form
    c_k: the product along its path of (child mass / parent mass) divided by
    the sensitivity of everything applied after it (Large et al. 2024, §3,
the composition and concatenation rules unrolled). The mass
    written is the atom's absolute share of the root's mass.
    """

    def walk(module: Module, target: float, mass: float):
        if isinstance(module, Atom):
            for p in module.params():
                p.set_metadata(multiplier=float(target), mass=float(mass))
            return
        for child, child_target, fraction in module.shares(target):
            walk(child, child_target, mass * fraction)

    if not isinstance(root, Module):
        raise TypeError(f"assign_geometry needs a zoo.nn.Module root, got {type(root).__name__}")
    walk(root, 1.0, root.mass())
    return root
