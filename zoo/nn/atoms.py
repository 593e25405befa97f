"""Atoms: modules with weights, each initialized on its norm's unit sphere.

Every weight is an ``nnx.Param`` whose metadata names its role, norm, fan-in,
fan-out, sensitivity and logical axes; :func:`zoo.nn.assign_geometry` adds its
mass and multiplier. The norms and initializers come from :mod:`optim.norms`,
the same definitions the optimizers normalize updates with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from optim import norms
from zoo.nn.module import Atom


def _param(rngs: nnx.Rngs | None, norm: str, shape, *, role: str, fan_in: int, fan_out: int, axes,
           value=None) -> nnx.Param:
    if len(axes) != len(shape):
        raise ValueError(f"axes {axes} must name each of the {len(shape)} dims of shape {shape}")
    if value is None:
        value = norms.get(norm).init(rngs.params(), tuple(shape))
    return nnx.Param(
        value,
        role=role,
        norm=norm,
        fan_in=int(fan_in),
        fan_out=int(fan_out),
        sensitivity=1.0,
        axes=tuple(axes),
        mass=None,
        multiplier=None,
    )


class Linear(Atom):
    """y = x W with W of shape (d_in, d_out) and RMS->RMS operator norm 1 at init.

    Norm: sqrt(d_in/d_out) * spectral norm (Large et al. 2024, Table 1).
    Init: semi-orthogonal scaled by sqrt(d_out/d_in); no forward scale.
    The product runs in ``dtype`` (None: the input's) and is cast to
    ``out_dtype`` (None: left as is); heads pass float32, so logits are f32
    when the model computes in bfloat16.
    """

    def __init__(self, d_in: int, d_out: int, *, role: str = "hidden", axes=("embed", "mlp"),
                 mass: float = 1.0, dtype=None, out_dtype=None, rngs: nnx.Rngs):
        super().__init__(mass)
        self.dtype = dtype
        self.out_dtype = out_dtype
        self.kernel = _param(rngs, "spectral", (d_in, d_out), role=role, fan_in=d_in, fan_out=d_out, axes=axes)

    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.kernel[...]
        dtype = self.dtype or x.dtype
        # a 2-D product: XLA's CPU backend runs the weight gradient of a (B, T, d) product 2-3x slower
        y = jnp.matmul(x.reshape(-1, x.shape[-1]).astype(dtype), w.astype(dtype))
        return y.reshape(*x.shape[:-1], w.shape[-1]).astype(self.out_dtype or y.dtype)


class Embed(Atom):
    """Lookup table of shape (num, d) whose rows have RMS 1 (l2 norm sqrt(d)).

    Norm: largest row RMS (Modula v2 embedding; Scion's ColNorm geometry).
    Called with integer ids; ``attend`` is not offered: heads are untied.
    """

    def __init__(self, num: int, d: int, *, axes=("vocab", "embed"), mass: float = 1.0,
                 dtype=None, rngs: nnx.Rngs):
        super().__init__(mass)
        self.dtype = dtype
        self.num = num
        self.table = _param(rngs, "embed", (num, d), role="embedding", fan_in=num, fan_out=d, axes=axes)

    def __call__(self, ids: jax.Array) -> jax.Array:
        out = jnp.take(self.table[...], ids, axis=0)
        return out.astype(self.dtype) if self.dtype else out


class Conv2D(Atom):
    """2-D convolution, NHWC inputs, kernel (k, k, c_in, c_out), 'SAME' padding.

    Norm: k^2 * largest per-tap RMS->RMS norm; init: each tap semi-orthogonal
    scaled by sqrt(c_out/c_in)/k^2 (Modula v1 Conv2D), so the norm starts at 1.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, *, stride: int = 1,
                 axes=(None, None, "conv_in", "conv_out"), mass: float = 1.0, dtype=None,
                 rngs: nnx.Rngs):
        super().__init__(mass)
        self.dtype = dtype
        self.stride = stride
        self.kernel = _param(rngs, "conv", (kernel_size, kernel_size, c_in, c_out), role="conv",
                             fan_in=c_in, fan_out=c_out, axes=axes)

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        return jax.lax.conv_general_dilated(
            x.astype(dtype), self.kernel[...].astype(dtype),
            window_strides=(self.stride, self.stride), padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"))


class PositionEmbed(Embed):
    """Learned absolute positions: for ids of shape (..., T) returns rows 0..T-1, broadcast.

    Same geometry as :class:`Embed` (one row per position, RMS 1 at init).
    """

    def __init__(self, context: int, d: int, *, axes=(None, "embed"), mass: float = 1.0,
                 dtype=None, rngs: nnx.Rngs):
        super().__init__(context, d, axes=axes, mass=mass, dtype=dtype, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        t = ids.shape[-1]
        if t > self.num:
            raise ValueError(f"sequence length {t} exceeds the model's context {self.num}; "
                             "crop the input or build the model with a larger context")
        out = jnp.broadcast_to(self.table[:t], ids.shape + (self.table.shape[-1],))
        return out.astype(self.dtype) if self.dtype else out


class Gain(Atom):
    """Learned per-feature scale y = x * g, g of shape (d,), ones at init (RMS norm 1).

    Norm: RMS of g; Scion updates it with the Bias (RMS) LMO and normalized
    optimizers with g/RMS(g) (Pethick et al. 2025, Table 2). Modula has no gains.
    """

    def __init__(self, d: int, *, axes=("embed",), mass: float = 1.0, dtype=None, rngs: nnx.Rngs):
        super().__init__(mass)
        self.dtype = dtype
        self.scale = _param(rngs, "rms", (d,), role="gain", fan_in=d, fan_out=d, axes=axes)

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        return x.astype(dtype) * self.scale[...].astype(dtype)


class Bias(Atom):
    """Learned per-feature offset y = x + b, b of shape (d,).

    Norm: RMS of b, updated like :class:`Gain`. Starts at zero (norm 0, not 1:
    an offset of RMS 1 would move every feature by its whole typical size).
    """

    def __init__(self, d: int, *, axes=("embed",), mass: float = 1.0, dtype=None, rngs: nnx.Rngs):
        super().__init__(mass)
        self.dtype = dtype
        self.offset = _param(None, "rms", (d,), role="bias", fan_in=d, fan_out=d, axes=axes,
                             value=jnp.zeros((d,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        return x.astype(dtype) + self.offset[...].astype(dtype)
