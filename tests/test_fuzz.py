"""Fuzzing with hypothesis: config overrides through the CLI, and optimizer inputs.

1. ``modzoo train`` (``zoo.cli.main``, in this process) with random
   ``--config.model/train/optim`` overrides — sizes zero, negative or past
   int64, heads that do not divide the width, NaN, infinite, negative and
   subnormal learning rates, unknown optimizer names, values of the wrong
   type — either trains (a valid config) or exits with one line naming the
   problem, never a traceback, and a refused config leaves no workdir.
   Valid values are only those that reuse the compiled run (the config's
   own sizes, its optimizer, one step, any learning rate), so few examples
   compile.
2. Every optimizer of :data:`optim.OPTIMIZERS` on random geometry trees
   (every role, stacked "layers" axes, float32 and bfloat16) and random
   gradients (zeros, 1e-30, 1e30, normal at scales 1e-30 … 1e30, mixtures):
   no update is non-finite; an all-zero atom gets a zero update; and for the
   normalized optimizers (both forms) and Scion each atom's update, measured
   in its norm, has its target size lr·c_k (Scion: lr·radius) within the
   stated band: Newton–Schulz's band for orthogonalized atoms, exactly for
   the others, and for the scaled form's spectral and conv atoms exactly the
   overshoot its power step implies, never above sqrt(min(d_in, d_out)).
   Every norm divides by the atom's largest entry before squaring, so the
   band holds at every scale, 1e-30 to 1e30; the one input excluded from the
   lower end is optax's: Adam's second moment overflows past entries of
   about 1.8e19 (HI).
"""

from __future__ import annotations

import inspect
import math
import pathlib
import signal
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import optim
from optim import norms
from optim.geometry import Geometry
from optim.newton_schulz import DEFAULT_PRESET
from optim.normalized import DEFAULT_NS_PRESET, ModularNormState
from optim.scion import DEFAULT_LMO, DEFAULT_RADIUS
from zoo.cli import main

# The same examples every run (derandomized, no example database written), and no shrinking: a failing example is
# reported as found, not rerun dozens of times (a hung one would take EXAMPLE_LIMIT_S each time).
FUZZ = dict(deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate))

# --- 1. config overrides through the CLI -----------------------------------------------------------------------------

BASE = ["train", "--config", "configs/gpt_shakespeare.py:test,optim=adamw", "--config.mesh.data=1",
        "--config.train.sample_tokens=0", "--config.train.norm_every=0"]
DEFAULTS = {"model.width": 32, "model.depth": 1, "model.heads": 4, "model.context": 16, "train.batch_size": 8,
            "train.keep": 2, "train.steps": 1}
"""The test config's own values: the only valid ones generated (with its optimizer, AdamW, the quickest to
compile), so every valid example reuses one compiled run."""
EXAMPLE_LIMIT_S = 60  # a valid example compiles once (about 10 s here); past this an example is hung: a failure
# (model.heads past int64 hangs today, before any other check: GPTConfig's "e.g. heads=..." hint loops up to heads)


TEXT = st.characters(exclude_categories=("Cc", "Cs"))  # what a command line can carry: no control characters


def _not_an_int(text: str) -> bool:
    """True unless ``int`` reads ``text`` (as "64", " 8", "0x10" or "٣"): those could be valid, uncompiled sizes."""
    for base in (10, 0):
        try:
            int(text, base)
            return False
        except ValueError:
            pass
    return True


# Sizes past int64 can never be allocated: a run must refuse them before it allocates anything. (Sizes between
# 2**20 and 2**62 are left out: today batch_size=2**31 hangs in the input pipeline, depth=2**31 runs ~50 s into
# a 35 TB allocation, and context=10**8 would really allocate 13 GB of this shared machine's memory.)
BAD_INTS = st.one_of(st.integers(max_value=0), st.sampled_from([2**63, 2**64 + 1, 10**30]))
NOT_INTS = st.one_of(st.sampled_from(["abc", "1.5", "nan", "inf", "-inf", "", "None", "[8]", "1e3", "True", "8.0"]),
                     st.text(TEXT, max_size=6).filter(_not_an_int))


def _int_field(name: str):
    bad = st.one_of(BAD_INTS, st.sampled_from([3, 5, 7, 64])) if name == "model.heads" else BAD_INTS  # 64 > width
    return st.one_of(bad, NOT_INTS, st.just(DEFAULTS[name]))


FIELDS = {
    **{name: _int_field(name) for name in DEFAULTS},
    "optim.name": st.one_of(st.just("adamw"),
                            st.sampled_from(["Adam", "SCION", "sgd", " scion", "adamw ", "normalized-adam", "none"]),
                            st.text(TEXT, max_size=8).filter(lambda s: s not in optim.OPTIMIZERS)),
    "optim.learning_rate": st.one_of(st.floats(), st.floats(min_value=1e-6, max_value=10.0),
                                     st.sampled_from(["abc", "", "1,5", "0.1.2", "[0.1]"])),
}


def _flag(field: str, value) -> str:
    return f"--config.{field}={value!r}" if isinstance(value, float) else f"--config.{field}={value}"


@st.composite
def config_overrides(draw) -> list[str]:
    """1-3 ``--config.FIELD=VALUE`` flags, plus ``--config.train.steps=1`` unless steps is one of them."""
    fields = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True))
    flags = [_flag(f, draw(FIELDS[f])) for f in fields]
    return flags if "train.steps" in fields else [*flags, _flag("train.steps", 1)]


class _Hung(Exception):
    pass


def _raise_hung(signum, frame):
    raise _Hung(f"the example ran over {EXAMPLE_LIMIT_S} s")


def _train(argv: list[str], capsys) -> None:
    """Run ``modzoo train`` with ``argv``; check it trained, or exited with one line and left no workdir."""
    capsys.readouterr()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp) / "run"
        previous = signal.signal(signal.SIGALRM, _raise_hung)
        signal.setitimer(signal.ITIMER_REAL, EXAMPLE_LIMIT_S)
        try:
            main([*BASE, "--workdir", str(workdir), *argv])
            code = None
        except SystemExit as e:
            code = e.code
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err
        if code is None:  # a valid config: it trained its one step and evaluated
            rows = (workdir / "metrics.jsonl").read_text().splitlines()
            assert '"split": "train"' in rows[0] and '"split": "eval"' in rows[-1]
            return
        message = code if isinstance(code, str) else out.err.rstrip("\n").split("\n")[-1]
        assert code in (2, 3) or isinstance(code, str), code
        assert message.startswith("modzoo train: ") and not {"\n", "\r"} & set(message), message
        if code != 3:  # refused, not diverged: nothing was written
            assert not workdir.exists(), message


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], **FUZZ)
@given(argv=config_overrides())
@example(argv=["--config.optim.learning_rate=0.05", "--config.train.steps=1"])  # a valid run, every time
@example(argv=["--config.optim.learning_rate=inf", "--config.train.steps=1"])  # diverges at step 1
def test_any_config_override_trains_or_exits_with_one_line(argv, capsys):
    _train(argv, capsys)


# --- 2. optimizer inputs ---------------------------------------------------------------------------------------------

HI = 1e19
"""Above about 1.8e19 the square in Adam's second moment (optax.scale_by_adam) overflows float32 (and bfloat16,
which has its exponent range): those entries get a zero direction, so normalized Adam's band is checked only
for atoms whose largest entry is below this. Every other optimizer, and every norm in optim, holds at any scale."""
NS_BAND = {"six_step": (0.99, 1.01), "polar_express": (0.85, 1.15)}
"""Largest singular value after Newton–Schulz: six_step (the normalized dual form) lands in [0.996, 0.999],
polar_express (Scion's default) in about [0.86, 1.14] (optim/newton_schulz.py)."""
ROUNDING = {"float32": 1e-4, "bfloat16": 1e-2}
"""Relative tolerance of a size the test computes exactly: a bfloat16 update is rounded three times (the
direction, the rate, the product), 2⁻⁹ each."""
SCION_MOMENTUM = inspect.signature(optim.scion).parameters["momentum"].default  # d = α·g after one step from zero
FORMS = [("scion", None), ("normalized_adam", "dual"), ("normalized_adam", "scaled"), ("normalized_sgd", "dual"),
         ("normalized_sgd", "scaled"), ("muon", None), ("adamw", None)]


ATOMS = [  # (roles, norm, stacked "layers" axes, core shape): every role, tall and wide, a fan of 1, 0-2 stack axes
    (("embedding",), "embed", (), (16, 8)), (("hidden",), "spectral", (2, 3), (8, 3)),
    (("output",), "spectral", (), (1, 8)), (("conv",), "conv", (2,), (3, 3, 2, 4)),
    (("gain", "bias"), "rms", (2,), (8,)),
]
"""The shapes the optimizer fuzz draws from: a fixed pool, since each new shape costs each optimizer about a
second of compilation on these CPUs (random sizes would spend the test's time compiling)."""


@st.composite
def atoms(draw, index: int):
    """(name, geometry, shape) of one parameter from :data:`ATOMS`, with a random multiplier."""
    roles, norm, stack, core = draw(st.sampled_from(ATOMS))
    role = draw(st.sampled_from(roles))
    fans = core[-2:] if norm != "rms" else core * 2
    axes = {"embed": ("vocab", "embed"), "spectral": ("embed", "mlp"), "rms": ("embed",),
            "conv": (None, None, "conv_in", "conv_out")}[norm]
    geometry = Geometry(role, norm, *fans, 1.0, 1.0, draw(st.floats(1 / 64, 1.0)), ("layers",) * len(stack) + axes)
    return f"p{index}", geometry, stack + core


KINDS = ("zeros", "normal", "mixed", "one zero atom")
SCALES = [1e-30, 1e-20, 1e-12, 1e-6, 1e-3, 1.0, 1e3, 1e6, 1e12, 1e18, 1e30]


def _gradient(rng, shape, stack_ndim, kind, scale):
    z = rng.standard_normal(shape)
    if kind == "zeros":
        return z * 0
    if kind == "mixed":  # entries 0, 1e-30, normal or 1e30 at random
        return z * np.choose(rng.integers(0, 4, shape), [0.0, 1e-30, 1.0, 1e30])
    g = z * scale
    if kind == "one zero atom" and stack_ndim:  # one stacked copy all zero, the others not
        g.reshape(-1, *shape[stack_ndim:])[rng.integers(math.prod(shape[:stack_ndim]))] = 0
    return g


@st.composite
def problems(draw):
    """A parameter tree with its geometry, a gradient of the same structure, a dtype and a learning rate."""
    leaves = [draw(atoms(i)) for i in range(draw(st.integers(1, 3)))]
    dtype = draw(st.sampled_from(["float32", "bfloat16"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    geometry = {name: geo for name, geo, _ in leaves}
    params = {name: jnp.asarray(rng.standard_normal(shape), dtype) for name, _, shape in leaves}
    grads = {name: jnp.asarray(_gradient(rng, shape, geo.stack_ndim, draw(st.sampled_from(KINDS)),
                                         draw(st.sampled_from(SCALES))), dtype)
             for name, geo, shape in leaves}
    return geometry, params, grads, dtype, draw(st.floats(1e-4, 10.0))


def _atoms(x, geo: Geometry):
    """``x`` (float64) as one row per stacked atom: shape (atoms, *core)."""
    return np.asarray(x, np.float64).reshape(-1, *x.shape[geo.stack_ndim:])


def _lmo_norm(name: str, u):
    """The norm in which Scion's LMO ``name`` has radius 1 (optim/lmo.py's table), per atom of u (atoms, *core)."""
    if name == "colnorm":  # each flax row to RMS 1
        return np.sqrt(np.mean(u**2, axis=-1)).max(axis=-1)
    if name == "bias":
        return np.sqrt(np.mean(u**2, axis=-1))
    if name == "sign":  # sign(G)/d_in
        return u.shape[-2] * np.abs(u).max(axis=(-2, -1))
    if name == "spectral":  # sqrt(d_out/d_in)·UVᵀ
        return math.sqrt(u.shape[-2] / u.shape[-1]) * np.linalg.svd(u, compute_uv=False)[:, 0]
    if name == "spectral_conv":  # UVᵀ of (k·k·c_in, c_out), times sqrt(c_out/c_in)/k²
        n, kh, kw, c_in, c_out = u.shape
        flat = u.reshape(n, kh * kw * c_in, c_out)
        return kh * kw * math.sqrt(c_in / c_out) * np.linalg.svd(flat, compute_uv=False)[:, 0]
    raise AssertionError(f"no measure for the {name} LMO")


def _direction(name: str, g):
    """What the normalization or LMO sees after one step from a zero state, per atom (float64, no overflow)."""
    if name == "normalized_adam":  # bias-corrected m/(sqrt(v) + eps) at step 1
        return g / (np.abs(g) + 1e-8)
    return SCION_MOMENTUM * g if name == "scion" else g


def _power_overshoot(x, v, conv: bool):
    """The scaled form's size for a spectral or conv atom, over its target: σ_max / (its estimate), per atom of
    ``x`` (atoms, *core), the estimate being max(one power step from the start vector ``v``, ‖x‖_F/sqrt(r)),
    r = min(d_in, d_out) (optim/norms.py). Always in [1, sqrt(r)]: the power step alone can be as poor as ``v`` is
    far from σ_max's singular vector (for Gaussian 8×3 atoms 1.9% overshot 2×, 0.09% 3×, and 6.3× was seen)."""
    w = np.einsum("...io,...o->...i", x, v)
    z = np.einsum("...io,...i->...o", x, w)
    w_norm, z_norm = np.linalg.norm(w, axis=-1), np.linalg.norm(z, axis=-1)
    power = z_norm / np.where(w_norm > 0, w_norm, 1.0)
    estimate = np.maximum(power, np.sqrt(np.sum(x**2, axis=(-2, -1))) / math.sqrt(min(x.shape[-2:])))
    sigma = np.linalg.svd(x, compute_uv=False)[..., 0]
    if conv:  # the largest over the k×k taps
        estimate, sigma = estimate.max(axis=(-2, -1)), sigma.max(axis=(-2, -1))
    return np.divide(sigma, estimate, out=np.ones_like(sigma), where=estimate > 0)  # a zero atom: no size to check


def _expected(name: str, form, geo: Geometry, g, v):
    """Per atom of ``g`` (float64, (atoms, *core)): the lower and upper end of the update's size over its target,
    and whether the lower end is promised (everywhere but where Adam's moment overflows: HI). ``v``: the scaled
    form's start vectors of a spectral or conv leaf."""
    x = _direction(name, g)
    promised = np.abs(g).reshape(len(g), -1).max(axis=1) <= HI if name == "normalized_adam" else np.ones(len(g), bool)
    lmo = DEFAULT_LMO[geo.role] if name == "scion" else None
    if form == "scaled":  # divided by its largest entry first, so any size, unless Adam's moment overflowed
        if not geo.atom_norm.powered:
            return 1.0, 1.0, promised
        size = _power_overshoot(x, _atoms(v, geo), geo.norm == "conv")
        assert np.all(size <= math.sqrt(min(geo.fan_in, geo.fan_out)) * (1 + 1e-9)), size  # the proven bound
        return size, np.where(promised, size, np.inf), promised
    if lmo == "sign" or (geo.norm in ("embed", "rms") and lmo in (None, "colnorm", "bias")):
        return 1.0, 1.0, promised
    low, high = NS_BAND[DEFAULT_PRESET if lmo else DEFAULT_NS_PRESET]
    return low, high, promised


def _start_vectors(geometry, state):
    """The scaled form's power-iteration start vectors in ``state``, by parameter name (spectral and conv leaves)."""
    found = [s for s in jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, ModularNormState))
             if isinstance(s, ModularNormState)]
    powered = [key for key, geo in sorted(geometry.items()) if geo.atom_norm.powered]
    return dict(zip(powered, found[0].vectors)) if found else {}


def _check_sizes(name, form, geometry, grads, updates, state, lr, dtype):
    tol = ROUNDING[dtype]
    vectors = _start_vectors(geometry, state)
    for key, geo in geometry.items():
        g, u = _atoms(grads[key], geo), _atoms(updates[key], geo)
        zero = ~np.any(g.reshape(len(g), -1), axis=1)
        assert not np.any(u[zero]), f"{name} {form}: {key}'s zero gradient got a nonzero update"
        if name == "scion":
            size = _lmo_norm(DEFAULT_LMO[geo.role], u) / (lr * DEFAULT_RADIUS[geo.role])
        else:
            size = np.asarray(geo.atom_norm.value(jnp.asarray(updates[key], jnp.float32))).reshape(-1)
            size = size / (lr * geo.multiplier)
        low, high, promised = _expected(name, form, geo, g, vectors.get(key))
        low, high = np.broadcast_to(low, size.shape), np.broadcast_to(high, size.shape)
        where = (f"{name} {form or ''}: {key} ({geo.role}, {geo.norm}, shape {grads[key].shape}, {dtype}, "
                 f"largest |g| {np.abs(g).max():.3g})")
        above = size > high * (1 + tol)
        assert not above.any(), f"{where}: update {size[above]} of its target, above {high[above]}"
        below = promised & ~zero & (size < low * (1 - tol))
        assert not below.any(), f"{where}: update {size[below]} of its target, below {low[below]}"


@settings(max_examples=40, **FUZZ)
@given(problem=problems())
def test_optimizer_updates_are_finite_and_normalized_ones_have_their_target_size(problem):
    geometry, params, grads, dtype, lr = problem
    for name, form in FORMS:
        tx = optim.build(name, lr, geometry, **({"form": form} if form else {}))
        state = tx.init(params)
        updates, _ = tx.update(grads, state, params)
        for key, u in updates.items():
            assert np.isfinite(np.asarray(u, np.float32)).all(), f"{name} {form}: non-finite update of {key}"
        if name in ("scion", "normalized_adam", "normalized_sgd"):
            _check_sizes(name, form, geometry, grads, updates, state, lr, dtype)


def test_the_norm_measures_agree_with_numpy():
    """The measures the fuzz test reads (optim.norms) against numpy's SVD and plain formulas, stacked atoms too."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 3, 5, 8))
    svd = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(norms.get("spectral").value(jnp.asarray(w, jnp.float32)),
                               math.sqrt(5 / 8) * svd[..., 0], rtol=1e-5)
    np.testing.assert_allclose(norms.get("conv").value(jnp.asarray(w[None], jnp.float32)),  # a 2×3 kernel of 5→8
                               [2 * 3 * math.sqrt(5 / 8) * svd[..., 0].max()], rtol=1e-5)
    np.testing.assert_allclose(norms.get("embed").value(jnp.asarray(w, jnp.float32)),
                               np.sqrt((w**2).mean(-1)).max(-1), rtol=1e-5)
    np.testing.assert_allclose(norms.get("rms").value(jnp.asarray(w, jnp.float32)), np.sqrt((w**2).mean(-1)), rtol=1e-5)
