"""The training run: one function that the CLI, tests and sweeps all call.

``train(config, workdir)`` builds the model by name, the optimizer from the
config's ``optim`` section (:func:`optim.from_settings`), the data pipeline, a
mesh with logical-axis shardings, and an Orbax checkpointer; it resumes from
the latest checkpoint in ``workdir`` automatically (onto whatever mesh this
run has) and returns its metrics.

Runs in one process whose configs differ only in seed, learning rate or
bookkeeping share their compiled train and eval steps (the peak learning rate
is optimizer state), so a sweep pays for compilation once per size.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

import data
import optim
import zoo
from data.atomic import write_bytes
from zoo import pretrained
from zoo.modular import norm_report
from zoo.models.base import INT32_MAX, modality_of
from zoo.summary import summary
from zoo.train.checkpoint import Checkpointer, abstract_like
from zoo.train.datasets import TOKENIZER_FILE, check_init_tokenizer, datasets
from zoo.train.metrics import MetricWriter, progress
from zoo.train.mesh import batch_axes, check_batch, make_mesh, maybe_initialize_distributed, param_shardings
from zoo.train.preemption import preemption_requests
from zoo.train.step import make_eval_step, make_train_step
from zoo.train.workdir_lock import workdir_lock


class Diverged(RuntimeError):
    """Training produced a non-finite loss or state; nothing non-finite was saved."""

    def __init__(self, step: int, what: str, last_good: int | None):
        self.step, self.last_good = step, last_good
        where = f"the last good state is the checkpoint of step {last_good}" if last_good else "nothing was saved"
        super().__init__(f"{what} at step {step}; stopped, {where}; "
                         "lower the learning rate or clip gradients (--config.optim.clip_norm=1)")


def _nonfinite(metrics) -> str:
    """What was not finite in a step's metrics, for :class:`Diverged`."""
    loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])
    if not math.isfinite(loss):
        return f"loss is {loss}"
    if not math.isfinite(grad_norm):
        return f"the gradient norm is {grad_norm}"
    return "the weights or optimizer state are not finite"


# train field: (least value, an example for the message); 0 turns skip_nonfinite and eval_batches off
_RANGES = {"steps": (1, 1000), "batch_size": (1, 32), "log_every": (1, 25), "keep": (1, 2),
           "skip_nonfinite": (0, 3), "eval_batches": (0, 20)}


class ConfigError(ValueError):
    """A config value out of range; the message is one line naming the field and a valid example."""


def check_train_settings(config: ml_collections.ConfigDict) -> None:
    """Raise :class:`ConfigError` for a ``train`` field out of range (called before anything is written)."""
    for field, (least, example) in _RANGES.items():
        value = config.train.get(field, 0 if least == 0 else None)
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= INT32_MAX:
            raise ConfigError(f"train.{field} must be a whole number in {least}..{INT32_MAX}, got {value!r}; "
                             f"e.g. --config.train.{field}={example}")


def learning_rate(cfg: ml_collections.ConfigDict) -> float:
    """``optim.learning_rate`` if set, else this optimizer's entry of ``optim.learning_rates``."""
    if cfg.get("learning_rate") is not None:
        return float(cfg.learning_rate)
    table = cfg.get("learning_rates") or {}
    if cfg.name not in table:
        raise ValueError(f"no default learning rate for optimizer {cfg.name!r} in this config: "
                         "set --config.optim.learning_rate=...")
    return float(table[cfg.name])


def optimizer_settings(config: ml_collections.ConfigDict) -> dict:
    """The plain settings dict :func:`optim.from_settings` takes, from ``config.optim``
    (:class:`ConfigError` for an unknown ``optim.name``)."""
    if config.optim.name not in optim.OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optim.name!r} (optim.name); choose one of "
                          f"{', '.join(optim.OPTIMIZERS)}, e.g. --config.optim.name=adamw")
    o = config.optim.to_dict()
    settings = {k: o.get(k) for k in optim.builder.SETTINGS}
    settings["learning_rate"] = learning_rate(config.optim)
    settings[o["name"]] = o.get(o["name"]) or {}
    optim.builder.check_settings(settings)  # here too: a run reusing a compiled step never rebuilds the optimizer
    return settings


def model_config(config: ml_collections.ConfigDict):
    """The zoo config: ``config.model.name`` with every set (non-None) ``config.model`` field as an override."""
    fields = {k: v for k, v in config.model.to_dict().items() if v is not None}
    return zoo.get_config(fields.pop("name"), **fields)


COMPUTE_FIELDS = ("dtype", "remat", "layer_loop", "attention", "fused_qkv")
"""Model fields that change how a model is computed, not its parameters: a run may resume with others."""


def model_differences(saved: dict, model_cfg) -> list[str]:
    """How the parameters a saved ``config.model`` section describes differ from ``model_cfg``'s, one
    ``"width 32 there, 64 here"`` per field; empty when they match (fields added to the model since the save
    take their defaults; :data:`COMPUTE_FIELDS` may differ)."""
    fields = {f.name for f in dataclasses.fields(model_cfg)}
    try:
        old = zoo.get_config(saved["name"], **{k: v for k, v in saved.items()
                                               if k != "name" and k in fields and v is not None})
    except (KeyError, ValueError, TypeError):
        return [f"model {saved.get('name')!r} there, which this modzoo cannot build"]
    if type(old) is not type(model_cfg):
        return [f"a {old.family} model there, {model_cfg.family} here"]
    return [f"{f.name} {getattr(old, f.name)!r} there, {getattr(model_cfg, f.name)!r} here"
            for f in dataclasses.fields(model_cfg)
            if f.name not in COMPUTE_FIELDS and getattr(old, f.name) != getattr(model_cfg, f.name)]


def param_target(config: ml_collections.ConfigDict) -> dict:
    """Abstract params (pure dict of ShapeDtypeStructs on the default device) of ``config``'s model."""
    model = nnx.eval_shape(lambda: zoo.build(model_config(config), rngs=nnx.Rngs(0)))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                        nnx.to_pure_dict(nnx.state(model)))


_UNCOMPILED = ("seed", "init_from")
_UNCOMPILED_OPTIM = ("learning_rate", "learning_rates")
_COMPILED_TRAIN = ("steps", "batch_size", "eval_batch_size", "skip_nonfinite")
_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 4


def _structure_key(config: ml_collections.ConfigDict) -> str:
    """What the compiled functions depend on: the config without seed, rates and bookkeeping."""
    c = config.to_dict()
    for k in _UNCOMPILED:
        c.pop(k, None)
    for k in _UNCOMPILED_OPTIM:
        c["optim"].pop(k, None)
    c["train"] = {k: c["train"].get(k) for k in _COMPILED_TRAIN}
    return json.dumps(c, sort_keys=True, default=str)


class _Compiled:
    """What a run compiles once: optimizer, shardings, the jitted init, train and eval steps."""

    def __init__(self, config, mesh, model_cfg, graphdef, geometry, params, *, with_optimizer: bool):
        self.param_shardings = param_shardings(geometry, params, mesh)
        self.batch_sharding = jax.NamedSharding(mesh, jax.P(batch_axes(mesh)))
        self.eval_fn = jax.jit(make_eval_step(graphdef), in_shardings=(self.param_shardings, self.batch_sharding))
        if not with_optimizer:
            return
        self.settings = optimizer_settings(config)
        self.tx = optim.from_settings(self.settings, geometry, int(config.train.steps))
        # the shardings jit gives the state when it inits from placed params (moments follow their params)
        state = jax.jit(self.tx.init)(jax.device_put(params, self.param_shardings))
        self.opt_shardings = jax.tree.map(lambda x: _on_mesh(x, mesh), state)
        self.init_fn = jax.jit(self.tx.init, in_shardings=(self.param_shardings,), out_shardings=self.opt_shardings)
        skip = bool(config.train.get("skip_nonfinite", 0))
        self.step_fn = jax.jit(make_train_step(graphdef, self.tx, skip_nonfinite=skip),
                               in_shardings=(self.param_shardings, self.opt_shardings, self.batch_sharding),
                               out_shardings=(self.param_shardings, self.opt_shardings, None),
                               donate_argnums=(0, 1))
        self.norms_fn = jax.jit(lambda p, q: norm_report(geometry, p, q))


def _on_mesh(x, mesh) -> jax.sharding.NamedSharding:
    """Keep an optimizer-state leaf's sharding if init placed it on the mesh, else replicate it there."""
    s = x.sharding
    if isinstance(s, jax.sharding.NamedSharding) and s.mesh == mesh:
        return s
    return jax.sharding.NamedSharding(mesh, jax.P())


def _compiled(config, mesh, model_cfg, graphdef, geometry, params, *, with_optimizer: bool) -> _Compiled:
    key = (_structure_key(config), with_optimizer)
    if key not in _CACHE:
        _CACHE[key] = _Compiled(config, mesh, model_cfg, graphdef, geometry, params, with_optimizer=with_optimizer)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]


class Run:
    """Everything a run holds between steps: model, params, optimizer state, compiled steps.

    ``with_optimizer=False`` builds what evaluation needs only.
    """

    def __init__(self, config, *, with_optimizer: bool = True):
        self.config = config
        self.mesh = make_mesh(config.mesh.to_dict())
        for field in ("batch_size", "eval_batch_size") if with_optimizer else ("eval_batch_size",):
            check_batch(self.mesh, config.train[field], f"train.{field}")
        self.model_cfg = model_config(config)
        model = zoo.build(self.model_cfg, rngs=nnx.Rngs(config.seed))
        self.summary = summary(model)
        self.geometry = zoo.geometry(model)
        self.graphdef, state = nnx.split(model)
        params = nnx.to_pure_dict(state)
        c = _compiled(config, self.mesh, self.model_cfg, self.graphdef, self.geometry, params,
                      with_optimizer=with_optimizer)
        self.compiled = c
        self.param_shardings = c.param_shardings
        self.params = jax.device_put(params, self.param_shardings)
        self.eval_fn = c.eval_fn
        if with_optimizer:
            self.settings = optimizer_settings(config)
            self.opt_shardings, self.step_fn = c.opt_shardings, c.step_fn
            state = c.init_fn(self.params)
            old = optim.peak_learning_rate(state)
            peak = jax.device_put(jnp.asarray(self.settings["learning_rate"], old.dtype), old.sharding)
            self.opt_state = state._replace(hyperparams={**state.hyperparams, "learning_rate": peak})

    def model(self, params=None) -> nnx.Module:
        return nnx.merge(self.graphdef, self.params if params is None else params)

    def learning_rate_at(self, count: int) -> float:
        return optim.learning_rate_at(self.settings, int(self.config.train.steps), count)

    def global_batch(self, batch) -> dict:
        return data.to_global(batch, self.mesh, batch_axes(self.mesh))

    def evaluate(self, eval_ds, params=None) -> dict:
        """Metrics on the whole evaluation split (padding rows masked out), or on its first ``train.eval_batches``
        batches (the same on every host: each host's share of a global batch pads to the same count); for text
        also ``nats_per_byte``, the mean loss times the scored tokens over their bytes (data.TextDataset.target_counts:
        those global batches hold exactly the split's first ``eval_batches`` × ``eval_batch_size`` windows)."""
        params = self.params if params is None else params
        batches = data.make_eval_batches(eval_ds, self.config.train.eval_batch_size)
        if self.config.train.get("eval_batches", 0):
            batches = batches[: self.config.train.eval_batches]
        totals, weight = {}, 0.0
        for batch in batches:
            m = jax.device_get(self.eval_fn(params, self.global_batch(batch)))
            w = float(m.pop("weight"))
            weight += w
            for k, v in m.items():
                totals[k] = totals.get(k, 0.0) + float(v) * w
        metrics = {k: v / weight for k, v in totals.items()}
        if isinstance(eval_ds, data.TextDataset):  # the loss per byte, which compares models across tokenizers
            limit = self.config.train.get("eval_batches", 0) * self.config.train.eval_batch_size
            tokens, num_bytes = eval_ds.target_counts(limit or None)
            metrics["nats_per_byte"] = metrics["loss"] * tokens / num_bytes
        return metrics


def _init_params(run: Run, source: str) -> None:
    """Replace the run's fresh params with pretrained ones (a catalog name or a workdir path)."""
    target = abstract_like(run.params, run.param_shardings)
    run.params = pretrained.load_params(source, target)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, stop_at: int | None = None,
          quiet: bool = False, on_log=None) -> dict:
    """Train (or resume) the run ``config`` describes in ``workdir``; return its metrics.

    ``stop_at`` ends the run after that step with a checkpoint, as a
    preemption would; calling again resumes. The returned dict holds
    ``train_losses`` (this call's logged steps), ``first_loss`` (the loss of
    step 1, when this call ran it), the final ``eval`` metrics, the last
    ``norms`` diagnostics and timings (``seconds``, ``seconds_setup`` before the
    first step, ``seconds_first_step`` (compilation included), ``seconds_eval``).
    ``on_log(step, loss)`` is called at every logged step (the sweeps'
    progress lines).

    Safety: a config that cannot run (bad ``train`` fields, model sizes, mesh,
    optimizer, data or ``init_from``) and a ``workdir`` that cannot hold it
    raise a one-line error and leave ``workdir`` as it was (a new one is
    not left behind); a run holds ``workdir``'s lock (process 0) from its
    start and a second one raises :class:`WorkdirLocked` at once; SIGTERM
    or SIGINT finish the current step (in a multi-process run: a step all
    processes agree on), commit its checkpoint and raise :class:`Preempted`;
    a step whose loss, gradients or new state are not finite (each step's
    flag is read while the next one runs) raises :class:`Diverged` before
    anything after it is saved, or with ``train.skip_nonfinite=N`` is not
    applied, up to N times.
    """
    t_start = time.perf_counter()
    check_train_settings(config)
    maybe_initialize_distributed()
    workdir = pathlib.Path(workdir)
    check_workdir(workdir)
    # The lock comes first, so a second run is refused at once; a workdir it creates for a config refused below
    # is removed again (zoo.train.workdir_lock).
    with (workdir_lock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()), \
            preemption_requests() as requests:
        run = Run(config)  # what can refuse the config runs while the workdir holds nothing but the lock
        train_ds, eval_ds = datasets(config, run.model_cfg, source=workdir)
        initialized = bool(config.get("init_from")) and not (workdir / "checkpoints").is_dir()
        if initialized:  # a new run (one with checkpoints resumes instead): its source is checked here too
            check_init_tokenizer(config.init_from, train_ds)
            _init_params(run, config.init_from)
        workdir.mkdir(parents=True, exist_ok=True)  # processes other than 0 (which holds the lock)
        tokenizer = getattr(train_ds, "tokenizer", None)
        if tokenizer is not None and jax.process_index() == 0 and not (workdir / TOKENIZER_FILE).is_file():
            tokenizer.save(workdir / TOKENIZER_FILE)  # before any checkpoint: a resumed run reads it back
        with contextlib.ExitStack() as closing:
            return _run(config, workdir, run, train_ds, eval_ds, initialized, stop_at, quiet, on_log, t_start,
                        requests, closing)


def check_workdir(workdir: pathlib.Path) -> None:
    """A one-line error, before anything is written, when ``workdir`` cannot hold a run: it or a folder above it
    is a file, or the folder to write in is not writable (``os.access``: root may write anywhere but on
    read-only mounts)."""
    folder = workdir.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing folder: the run writes there (creating the rest)
    where = "" if folder == workdir.absolute() else f" (under {folder})"
    if not folder.is_dir():
        raise NotADirectoryError(f"workdir {workdir}{where} is a file, not a folder; give a folder's path "
                                 "(created if missing), e.g. --workdir runs/NAME")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"workdir {workdir}{where} is not writable; give a --workdir you can write to, "
                              f"or make {folder} writable")


def _run(config, workdir, run, train_ds, eval_ds, initialized, stop_at, quiet, on_log, t_start, requests,
         closing) -> dict:
    """The body of :func:`train`, under its lock and signal handlers, from its checked ``run`` and datasets
    (``initialized``: ``init_from`` already loaded); ``closing`` closes what it opens."""
    steps = int(config.train.steps)
    iterator = data.make_train_iterator(train_ds, config.train.batch_size, seed=config.seed)
    ckpt = Checkpointer(workdir, max_to_keep=config.train.keep)
    closing.callback(ckpt.close)  # after any exit: pending saves are committed before the lock is released
    skipped = 0
    meta = {"config": json.loads(config.to_json())}

    def same_run(saved_meta):
        saved = saved_meta["config"]
        differ = model_differences(saved["model"], run.model_cfg)
        if saved["optim"]["name"] != config.optim.name:
            differ.append(f"optimizer {saved['optim']['name']} there, {config.optim.name} here")
        if differ:
            raise ValueError(f"{workdir} holds a run of model {saved['model']['name']} that this config cannot "
                             f"resume ({'; '.join(differ)}); use a new --workdir, or the config it was trained with")

    start, restored = ckpt.restore_latest_good(params=abstract_like(run.params, run.param_shardings),
                                               opt_state=abstract_like(run.opt_state, run.opt_shardings),
                                               check_meta=same_run)
    start = start or 0
    if restored:
        run.params, run.opt_state = restored["params"], restored["opt_state"]
        data.restore_iterator(iterator, restored["data"]["iterator"].encode())
        skipped = int(restored["meta"].get("skipped", 0))
    elif config.get("init_from") and not initialized:
        _init_params(run, config.init_from)
    writer = MetricWriter(workdir, start=start, redo_eval=start == steps)
    closing.callback(writer.close)
    if not quiet and jax.process_index() == 0:
        print(run.summary)
        print(f"mesh {dict(run.mesh.shape)}; optimizer {config.optim.name}; steps {start}..{steps}")

    skip_limit = int(config.train.get("skip_nonfinite", 0))
    unchecked = []  # (step, metrics) of the step dispatched last, its `finite` flag not read yet

    def confirm():
        """Read the flag of the unchecked step: count a skip or stop the run if it was not finite."""
        nonlocal skipped
        while unchecked:
            step, metrics = unchecked.pop()
            if bool(metrics["finite"]):
                continue
            if skipped == skip_limit:
                what = _nonfinite(metrics)
                if skip_limit:
                    what += f" ({skipped} non-finite steps skipped already, train.skip_nonfinite={skip_limit})"
                writer.write(step, "train", step_values(metrics))  # the diverged step's row, logged or not
                ckpt.wait()
                raise Diverged(step, what, ckpt.latest_step())
            skipped += 1

    def step_values(metrics):
        """A train row's values from the step's own metrics."""
        values = {"loss": metrics["loss"], "grad_norm": metrics["grad_norm"]}
        return {**values, "skipped": skipped} if skip_limit else values

    def save(step):
        if ckpt.latest_step() == step:
            return
        confirm()
        ckpt.save(step, params=run.params, opt_state=run.opt_state,
                  data_state={"iterator": data.iterator_state(iterator).decode()},
                  meta={**meta, "step": step, "skipped": skipped})

    def leave_if_preempted(step):
        if requests.stop_now():
            raise requests.preempted(step)

    text = modality_of(run.model_cfg) == "text"
    unit = "tokens" if text else "images"
    per_example = run.model_cfg.context if unit == "tokens" else 1
    norm_every = int(config.train.get("norm_every", 0) or 0)
    result = {"train_losses": [], "first_loss": None, "eval": {}, "norms": {}}
    end = steps if stop_at is None else min(stop_at, steps)
    bar = progress(start, steps, enabled=not quiet)
    closing.callback(bar.close)
    t_loop = t_log = time.perf_counter()
    result["seconds_setup"] = t_loop - t_start
    n_log, seconds_eval = 0, 0.0
    for step in range(start + 1, end + 1):
        batch = run.global_batch(next(iterator))
        measure_norms = norm_every and (step % norm_every == 0 or step == end)
        previous = jax.tree.map(jnp.copy, run.params) if measure_norms else None
        run.params, run.opt_state, metrics = run.step_fn(run.params, run.opt_state, batch)
        confirm()  # the previous step's flag: read while this step runs, so the loop never waits for it
        unchecked.append((step, metrics))
        if step == start + 1:
            jax.block_until_ready(metrics)
            result["seconds_first_step"] = time.perf_counter() - t_loop
        n_log += 1
        if measure_norms:
            t_norms = time.perf_counter()
            pair = (run.params, previous)
            if jax.process_count() == 1:
                # On one device: the exact SVDs run once, not once per device (on simulated CPU devices
                # concurrent LAPACK calls deadlocked, seen with 8 of them under pytest).
                pair = jax.device_put(pair, jax.devices()[0])
            norms = {k: float(v) for k, v in run.compiled.norms_fn(*pair).items()}
            result["norms"] = norms
            writer.write(step, "norms", norms)
            t_log += time.perf_counter() - t_norms  # the logged rate is of training steps alone
        if step % config.train.log_every == 0 or step == end or step == 1:
            confirm()
            loss = float(metrics["loss"])
            if step == 1:
                result["first_loss"] = loss
            result["train_losses"].append(loss)
            now = time.perf_counter()
            rate = n_log * config.train.batch_size * per_example / (now - t_log)
            t_log, n_log = now, 0
            values = {**step_values(metrics), "learning_rate": run.learning_rate_at(step - 1 - skipped),
                      f"{unit}_per_s": rate}
            writer.write(step, "train", values)
            if on_log is not None:
                on_log(step, loss)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{values['learning_rate']:.3g}", **{f"{unit}/s": f"{rate:,.0f}"})
        bar.update(1)
        if config.train.eval_every and step % config.train.eval_every == 0 and step != steps:
            confirm()
            t_eval = time.perf_counter()
            result["eval"] = run.evaluate(eval_ds)
            seconds_eval += time.perf_counter() - t_eval
            t_log += time.perf_counter() - t_eval
            writer.write(step, "eval", result["eval"])
        if config.train.checkpoint_every and step % config.train.checkpoint_every == 0:
            save(step)
        if requests.stop_after(step - start):  # every step, on every process: they agree on the step
            save(step)
            raise requests.preempted(step)
    bar.close()
    if end > start and (end == steps or stop_at is not None):
        save(end)
    leave_if_preempted(end)
    if end == steps:
        t_eval = time.perf_counter()
        result["eval"] = run.evaluate(eval_ds)
        seconds_eval += time.perf_counter() - t_eval
        writer.write(steps, "eval", result["eval"])
    result.update(step=end, seconds_eval=seconds_eval, skipped=skipped)
    leave_if_preempted(end)
    if end == steps and text and config.train.sample_tokens:
        from zoo.sample import generate

        text = generate(run.model(), config.train.sample_prompt, max_new_tokens=config.train.sample_tokens,
                        temperature=0.8, top_k=40, seed=config.seed, tokenizer=eval_ds.tokenizer)
        result["sample"] = text.decode("utf-8", errors="replace")
        write_bytes(workdir / "sample.txt", result["sample"].encode())
    result["seconds"] = time.perf_counter() - t_start
    if not quiet and jax.process_index() == 0:
        print(json.dumps({"step": end, "eval": result["eval"], "seconds": round(result["seconds"], 1)}))
        if "sample" in result:
            print("--- sample ---\n" + config.train.sample_prompt + result["sample"])
    return result


def trained_model(config: ml_collections.ConfigDict, source: str) -> nnx.Module:
    """``config``'s model with params from ``source`` (workdir, .msgpack or pretrained name)."""
    run = Run(config, with_optimizer=False)
    _init_params(run, source)
    return run.model()


def evaluate(config: ml_collections.ConfigDict, source: str) -> dict:
    """Evaluation metrics of ``config``'s model with params from ``source`` (workdir, .msgpack or pretrained name)."""
    run = Run(config, with_optimizer=False)
    _, eval_ds = datasets(config, run.model_cfg, source=source)
    _init_params(run, source)
    return run.evaluate(eval_ds)
