"""Combinators: compound modules whose mass and sensitivity follow from their children.

Rules (Large et al. 2024, §3, Props. 3-5), for a whole of
mass m given update target t:

- ``Sequential(M0, ..., Mn)`` (M0 runs first): mass sum m_i, sensitivity
  prod s_i; child i gets t * (m_i/m) / prod_{j>i} s_j.
- ``Parallel(M0, ..., Mn)`` (same input, tuple output): mass sum m_i,
  sensitivity sum s_i; child i gets t * m_i/m.
- ``Scaled(a, M)``: mass m, sensitivity abs(a)*s; M gets t/abs(a).
- ``Residual(branches, depth=L)``: L stacked steps, each applying
  x <- (1-alpha) x + alpha b(x) for every branch b, alpha = 1/(n_branches L);
  sensitivity 1 at any depth, and branch b gets t * n_branches * m_b / sum m,
  independent of L.

A compound of mass 0 passes a zero target. Any compound takes ``mass=`` to fix
its absolute mass (Modula's "tare"); shares inside it keep their ratios.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from optim.geometry import STACK_AXIS
from zoo.nn.atoms import Linear
from zoo.nn.module import Module


def _prod(values) -> float:
    return math.prod(values) if values else 1.0


class _Compound(Module):
    def __init__(self, mass: float | None):
        if mass is not None and mass < 0:
            raise ValueError(f"mass must be >= 0, got {mass}")
        self._mass_override = mass

    def _set_children(self, positional: Sequence[Module], named: dict[str, Module], prefix: str):
        """Store children as attributes (so parameter paths read ``block.attn.q.kernel``), in order."""
        if positional and named:
            raise ValueError(f"{type(self).__name__} takes children either all positional or all named, not both")
        items = named.items() if named else ((f"{prefix}{i}", m) for i, m in enumerate(positional))
        items = list(items)
        if not items:
            raise ValueError(f"{type(self).__name__} needs at least one module")
        for name, module in items:
            if hasattr(type(self), name) or name.startswith("_") or name == "child_names":
                raise ValueError(f"child name {name!r} clashes with an attribute of {type(self).__name__}; rename it")
            if not isinstance(module, Module):
                raise TypeError(f"child {name!r} is a {type(module).__name__}, not a zoo.nn.Module")
            setattr(self, name, module)
        self.child_names = tuple(name for name, _ in items)

    def _children(self) -> list[Module]:
        return [getattr(self, n) for n in self.child_names]

    def _own_mass(self) -> float:
        return sum(c.mass() for c in self._children())

    def mass(self) -> float:
        return self._own_mass() if self._mass_override is None else float(self._mass_override)


class Sequential(_Compound):
    """Composition: ``Sequential(a, b)(x) = b(a(x))``; children positional or named."""

    def __init__(self, *layers: Module, mass: float | None = None, **named: Module):
        super().__init__(mass)
        self._set_children(layers, named, "layer")

    def sensitivity(self) -> float:
        return _prod([c.sensitivity() for c in self._children()])

    def shares(self, target):
        layers = self._children()
        total = self._own_mass()
        for i, child in enumerate(layers):
            if total == 0:
                yield child, 0.0, 0.0
                continue
            after = _prod([c.sensitivity() for c in layers[i + 1:]])
            if after == 0:
                raise ValueError(f"a module after {type(child).__name__} has sensitivity 0; its target is undefined")
            yield child, target * (child.mass() / total) / after, child.mass() / total

    def __call__(self, x):
        for layer in self._children():
            x = layer(x)
        return x


class Parallel(_Compound):
    """Concatenation: ``Parallel(a, b)(x) = (a(x), b(x))``; children positional or named."""

    def __init__(self, *branches: Module, mass: float | None = None, **named: Module):
        super().__init__(mass)
        self._set_children(branches, named, "branch")

    def sensitivity(self) -> float:
        return sum(c.sensitivity() for c in self._children())

    def shares(self, target):
        total = self._own_mass()
        for child in self._children():
            fraction = child.mass() / total if total else 0.0
            yield child, target * fraction, fraction

    def __call__(self, x):
        return tuple(b(x) for b in self._children())


def _leading_linear(branch: Module) -> tuple[Linear, list[Module]]:
    """(the Linear a branch starts with, the modules after it)."""
    if isinstance(branch, Linear):
        return branch, []
    if isinstance(branch, Sequential) and isinstance(branch._children()[0], Linear):
        first, *rest = branch._children()
        return first, rest
    raise TypeError(f"FusedParallel branches must be a Linear or a Sequential that starts with one, "
                    f"not {type(branch).__name__}; use Parallel")


class FusedParallel(Parallel):
    """:class:`Parallel` over branches that each start with a :class:`Linear` of the same input
    (e.g. attention's Q, K and V): those Linears run as one matmul of their concatenated kernels.

    The parameters, masses, sensitivities and multipliers are exactly
    Parallel's (each kernel stays its own atom with its own geometry, so an
    optimizer updates each as before); only the forward computation is fused.
    """

    def __init__(self, *branches: Module, mass: float | None = None, **named: Module):
        super().__init__(*branches, mass=mass, **named)
        linears = [_leading_linear(b)[0] for b in self._children()]
        d_in = {lin.kernel.shape[0] for lin in linears}
        if len(d_in) != 1 or len({lin.dtype for lin in linears}) != 1:
            raise ValueError(f"FusedParallel needs Linears of one input width and dtype, got widths {sorted(d_in)}; "
                             "use Parallel")

    def __call__(self, x):
        heads, tails = zip(*(_leading_linear(b) for b in self._children()))
        dtype = heads[0].dtype or x.dtype
        kernel = jnp.concatenate([h.kernel[...] for h in heads], axis=-1).astype(dtype)
        y = jnp.matmul(x.reshape(-1, x.shape[-1]).astype(dtype), kernel)  # 2-D, as in Linear
        ends = list(itertools.accumulate(h.kernel.shape[-1] for h in heads))[:-1]
        outs = []
        for part, tail in zip(jnp.split(y, ends, axis=-1), tails):
            part = part.reshape(*x.shape[:-1], part.shape[-1])
            for module in tail:
                part = module(part)
            outs.append(part)
        return tuple(outs)


class Scaled(_Compound):
    """Scalar multiple of a module's output: ``Scaled(a, M)(x) = a * M(x)``."""

    def __init__(self, scale: float, module: Module, *, mass: float | None = None):
        super().__init__(mass)
        if scale == 0:
            raise ValueError("Scaled needs a nonzero scale")
        self.scale = float(scale)
        self.module = module

    def _children(self):
        return [self.module]

    def sensitivity(self) -> float:
        return abs(self.scale) * self.module.sensitivity()

    def shares(self, target):
        yield self.module, target / abs(self.scale), 1.0

    def __call__(self, x):
        return self.scale * self.module(x)


class Residual(_Compound):
    """``depth`` residual steps over stacked branches, scanned or unrolled.

    ``make_branches(rngs)`` builds one step's branches as a dict of named
    modules (or a sequence); it is called under ``nnx.vmap``, so every
    parameter gets a leading ``"layers"`` axis of size ``depth`` (parameter
    paths read ``<stage>.layers.<branch>...``). Each step applies
    x <- (1 - alpha) x + alpha * b(x) for each branch in order, with
    alpha = 1 / (len(branches) * depth) (Large et al. 2024, §4: residual
    networks whose sensitivity stays 1). Branches must have sensitivity 1.

    ``scan=True`` runs the steps with ``nnx.scan`` (compile time flat in
    depth); ``scan=False`` unrolls them over slices of the same stacked
    parameters (MaxText's ``scan_layers`` switch; faster on XLA:CPU). Both give
    the same parameter tree and the same function. ``remat=True`` recomputes
    each step's activations in the backward pass.
    """

    def __init__(self, make_branches: Callable[[nnx.Rngs], Sequence[Module] | dict[str, Module]], depth: int, *,
                 mass: float | None = None, remat: bool = False, scan: bool = True, rngs: nnx.Rngs):
        super().__init__(mass)
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = int(depth)
        self.remat = remat
        self.scan = scan

        def container(r):
            branches = make_branches(r)
            return Parallel(**branches) if isinstance(branches, dict) else Parallel(*branches)

        self.layers = nnx.split_rngs(splits=self.depth)(nnx.vmap(container, in_axes=(0,), out_axes=0))(rngs)
        for branch in self._children():
            s = branch.sensitivity()
            if not math.isclose(s, 1.0, rel_tol=1e-9):
                raise ValueError(f"Residual branches need sensitivity 1, {type(branch).__name__} has {s}; "
                                 "normalize it (e.g. RMSNorm first, scaled activations)")
        for _, value in nnx.iter_graph(self.layers):
            if isinstance(value, nnx.Param):
                value.set_metadata(axes=(STACK_AXIS,) + tuple(value.get_metadata()["axes"]))

    def _children(self):
        return self.layers._children()

    def _own_mass(self) -> float:
        return self.depth * sum(b.mass() for b in self._children())

    def sensitivity(self) -> float:
        return 1.0

    def shares(self, target):
        branches = self._children()
        step_mass = sum(b.mass() for b in branches)
        for branch in branches:
            fraction = branch.mass() / step_mass if step_mass else 0.0
            # per stacked copy: mass share of one step (1/depth of the stack)
            yield branch, target * len(branches) * fraction, fraction / self.depth

    def update(self, h, y):
        """One branch's residual update of ``h`` by its output ``y``: (1 - alpha) h + alpha y."""
        alpha = 1.0 / (len(self._children()) * self.depth)
        return (1.0 - alpha) * h + alpha * y

    def _run(self, x, collect: bool):
        def step(container, h):
            for b in container._children():
                h = self.update(h, b(h))
            return h

        if self.scan:
            def body(container, h):
                h = step(container, h)
                return h, (h if collect else None)

            body = nnx.remat(body) if self.remat else body
            return nnx.scan(body, in_axes=(0, nnx.Carry), out_axes=(nnx.Carry, 0))(self.layers, x)

        graphdef, state = nnx.split(self.layers)

        def pure_step(layer_state, h):
            return step(nnx.merge(graphdef, layer_state), h)

        pure_step = jax.checkpoint(pure_step) if self.remat else pure_step
        outputs = []
        for i in range(self.depth):
            x = pure_step(jax.tree.map(lambda a: a[i], state), x)
            outputs.append(x)
        return x, (jnp.stack(outputs) if collect else None)

    def __call__(self, x):
        return self._run(x, collect=False)[0]

    def trace(self, x) -> tuple[jax.Array, jax.Array]:
        """Run all steps; also return each step's output stacked on axis 0."""
        return self._run(x, collect=True)
