"""AdamW, the baseline (Loshchilov & Hutter 2019) with the package's uniform signature."""

from __future__ import annotations

import optax

from optim.dtypes import float_dtype


def adamw(
    learning_rate: optax.ScalarOrSchedule,
    geometry=None,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    nesterov: bool = False,
    mu_dtype=None,
) -> optax.GradientTransformation:
    """``optax.adamw`` with its defaults; ``geometry`` is accepted and ignored so
    every optimizer of :func:`optim.build` takes the same arguments (explicit
    keywords, so ``optax.inject_hyperparams`` sees each one). ``mu_dtype`` is
    the first moment's storage dtype (None: the parameters'); optax computes
    each step from it in float32."""
    del geometry
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, nesterov=nesterov,
                       mu_dtype=float_dtype(mu_dtype, "adamw's mu_dtype"))
