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

ROLES = ("embedding", "hidden", "output", "conv", "gain", "bias")
NORMS = ("spectral", "embed", "conv", "rms")
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
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; expected one of {NORMS}")

    @property
    def stack_ndim(self) -> int:
        """Number of leading stacked ("layers") axes."""
        n = 0
        while n < len(self.axes) and self.axes[n] == STACK_AXIS:
            n += 1
        return n


def is_geometry(x) -> bool:
    """True for a :class:`Geometry` leaf (use as ``is_leaf`` in tree maps)."""
    return isinstance(x, Geometry)
