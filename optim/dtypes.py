"""The floating dtypes a setting may name: one check for compute and optimizer-state dtypes alike."""

from __future__ import annotations

import jax.numpy as jnp

FLOAT_DTYPES = ("float32", "bfloat16", "float16")


def float_dtype(value, what: str):
    """``value`` (a name such as ``"bfloat16"``, or a dtype) as a ``jnp.dtype``; None stays None.

    Anything but float32, bfloat16 or float16 raises a one-line ValueError naming the setting ``what``.
    """
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in FLOAT_DTYPES:
        raise ValueError(f"{what} is {value!r}; choose one of {', '.join(FLOAT_DTYPES)}")
    return dtype
