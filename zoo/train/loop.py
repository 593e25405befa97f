"""The training run: one function that the CLI, tests and sweeps all call.

``train(config, workdir)`` builds the model by name, the optimizer by one
config field, the data pipeline, a mesh with logical-axis shardings, and an
Orbax checkpointer; it resumes from the latest checkpoint in ``workdir``
automatically (onto whatever mesh this run has) and returns its metrics.
"""

from __future__ import annotations

import json
import pathlib
import tempfile
import time

import jax
import ml_collections
import optax
from flax import nnx

import data
import optim
import zoo
from zoo import pretrained
from zoo.summary import summary
from zoo.train.checkpoint import Checkpointer, abstract_like
from zoo.train.logging import MetricWriter, progress
from zoo.train.mesh import batch_axes, make_mesh, maybe_initialize_distributed, param_shardings


def make_schedule(cfg: ml_collections.ConfigDict, steps: int) -> optax.Schedule:
    """Linear warmup over ``warmup_steps``, constant, then linear decay to 0 over the last ``decay_fraction``."""
    lr = learning_rate(cfg)
    warmup = int(cfg.warmup_steps)
    decay = max(int(round(cfg.decay_fraction * steps)), 1) if cfg.decay_fraction > 0 else 0
    pieces, boundaries = [], []
    if warmup:
        pieces.append(optax.linear_schedule(0.0, lr, warmup))
        boundaries.append(warmup)
    flat = steps - warmup - decay
    if flat > 0:
        pieces.append(optax.constant_schedule(lr))
        boundaries.append(warmup + flat)
    pieces.append(optax.linear_schedule(lr, 0.0, decay) if decay else optax.constant_schedule(lr))
    return optax.join_schedules(pieces, boundaries) if boundaries else pieces[0]


def learning_rate(cfg: ml_collections.ConfigDict) -> float:
    """``optim.learning_rate`` if set, else this optimizer's entry of ``optim.learning_rates``."""
    if cfg.get("learning_rate") is not None:
        return float(cfg.learning_rate)
    table = cfg.get("learning_rates") or {}
    if cfg.name not in table:
        raise ValueError(f"no learning rate for optimizer {cfg.name!r}: set --config.optim.learning_rate=...")
    return float(table[cfg.name])


def build_optimizer(cfg: ml_collections.ConfigDict, geometry, steps: int) -> optax.GradientTransformation:
    """The optimizer named by ``cfg.name`` with its own section's settings, optionally clipped."""
    kwargs = cfg.get(cfg.name)
    kwargs = kwargs.to_dict() if isinstance(kwargs, ml_collections.ConfigDict) else dict(kwargs or {})
    tx = optim.build(cfg.name, make_schedule(cfg, steps), geometry, **kwargs)
    if cfg.get("clip_norm"):
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    return tx


def model_config(config: ml_collections.ConfigDict):
    """The zoo config: ``config.model.name`` with every other ``config.model`` field as an override."""
    fields = config.model.to_dict()
    return zoo.get_config(fields.pop("name"), **fields)


def param_target(config: ml_collections.ConfigDict) -> dict:
    """Abstract params (pure dict of ShapeDtypeStructs on the default device) of ``config``'s model."""
    model = nnx.eval_shape(lambda: zoo.build(model_config(config), rngs=nnx.Rngs(0)))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                        nnx.to_pure_dict(nnx.state(model)))


def datasets(config: ml_collections.ConfigDict, model_cfg):
    """(train, evaluation) datasets for the model's family."""
    if model_cfg.family == "gpt":
        return (data.text_dataset(config.data.name, "train", model_cfg.context),
                data.text_dataset(config.data.name, "validation", model_cfg.context))
    return (data.image_dataset(config.data.name, "train", augment=config.data.get("augment", True)),
            data.image_dataset(config.data.name, config.data.get("eval_split", "test"), augment=False))


class Run:
    """Everything a run holds between steps; built by :func:`setup`."""

    def __init__(self, config, workdir):
        self.config = config
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mesh = make_mesh(config.mesh.to_dict())
        self.model_cfg = model_config(config)
        model = zoo.build(self.model_cfg, rngs=nnx.Rngs(config.seed))
        self.summary = summary(model)
        self.geometry = zoo.geometry(model)
        self.graphdef, state = nnx.split(model)
        params = nnx.to_pure_dict(state)
        self.param_shardings = param_shardings(self.geometry, params, self.mesh)
        self.params = jax.device_put(params, self.param_shardings)
        self.tx = build_optimizer(config.optim, self.geometry, config.train.steps)
        opt_state = jax.jit(self.tx.init)(self.params)
        self.opt_shardings = jax.tree.map(self._on_mesh, opt_state)
        self.opt_state = jax.device_put(opt_state, self.opt_shardings)
        self.batch_sharding = jax.NamedSharding(self.mesh, jax.P(batch_axes(self.mesh)))
        self.schedule = make_schedule(config.optim, config.train.steps)
        self.step_fn = jax.jit(self._step, in_shardings=(self.param_shardings, self.opt_shardings, self.batch_sharding),
                               out_shardings=(self.param_shardings, self.opt_shardings, None),
                               donate_argnums=(0, 1))
        self.eval_fn = jax.jit(self._eval, in_shardings=(self.param_shardings, self.batch_sharding))

    def _on_mesh(self, x) -> jax.sharding.NamedSharding:
        """Keep an optimizer-state leaf's sharding if init placed it on the mesh, else replicate it there."""
        s = x.sharding
        if isinstance(s, jax.sharding.NamedSharding) and s.mesh == self.mesh:
            return s
        return jax.sharding.NamedSharding(self.mesh, jax.P())

    def model(self, params=None) -> nnx.Module:
        return nnx.merge(self.graphdef, self.params if params is None else params)

    def _step(self, params, opt_state, batch):
        def loss_fn(p):
            return nnx.merge(self.graphdef, p).loss(batch)

        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, metrics

    def _eval(self, params, batch):
        return nnx.merge(self.graphdef, params).loss(batch)[1]

    def global_batch(self, batch) -> dict:
        return data.to_global(batch, self.mesh, batch_axes(self.mesh))

    def evaluate(self, params=None) -> dict:
        """Metrics on the whole evaluation split (padding rows masked out)."""
        params = self.params if params is None else params
        totals, weight = {}, 0.0
        for batch in data.make_eval_batches(self.eval_ds, self.config.train.eval_batch_size):
            m = jax.device_get(self.eval_fn(params, self.global_batch(batch)))
            w = float(m.pop("weight"))
            weight += w
            for k, v in m.items():
                totals[k] = totals.get(k, 0.0) + float(v) * w
        return {k: v / weight for k, v in totals.items()}


def _init_params(run: Run, source: str) -> None:
    """Replace the run's fresh params with pretrained ones (a catalog name or a workdir path)."""
    target = abstract_like(run.params, run.param_shardings)
    run.params = pretrained.load_params(source, target)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *, stop_at: int | None = None,
          quiet: bool = False) -> dict:
    """Train (or resume) the run ``config`` describes in ``workdir``; return its metrics.

    ``stop_at`` ends the run after that step with a checkpoint, as a
    preemption would; calling again resumes. The returned dict holds
    ``train_losses`` (this call's steps), the final ``eval`` metrics and timing.
    """
    maybe_initialize_distributed()
    run = Run(config, workdir)
    steps = int(config.train.steps)
    run.train_ds, run.eval_ds = datasets(config, run.model_cfg)
    iterator = data.make_train_iterator(run.train_ds, config.train.batch_size, seed=config.seed)
    ckpt = Checkpointer(run.workdir, max_to_keep=config.train.keep)
    writer = MetricWriter(run.workdir)
    start = ckpt.latest_step() or 0
    meta = {"config": json.loads(config.to_json())}
    if start:
        saved_model = ckpt.meta(start)["config"]["model"]
        if saved_model != meta["config"]["model"]:
            ckpt.close()
            raise ValueError(f"{run.workdir} holds a run of model {saved_model}, not {meta['config']['model']}; "
                             "use a new --workdir or the same model config")
        restored = ckpt.restore(start, params=abstract_like(run.params, run.param_shardings),
                                opt_state=abstract_like(run.opt_state, run.opt_shardings))
        run.params, run.opt_state = restored["params"], restored["opt_state"]
        data.restore_iterator(iterator, restored["data"]["iterator"].encode())
    elif config.get("init_from"):
        try:
            _init_params(run, config.init_from)
        except Exception:
            ckpt.close()
            raise
    if not quiet and jax.process_index() == 0:
        print(run.summary)
        print(f"mesh {dict(run.mesh.shape)}; optimizer {config.optim.name}; steps {start}..{steps}")

    def save(step):
        if ckpt.latest_step() == step:
            return
        ckpt.save(step, params=run.params, opt_state=run.opt_state,
                  data_state={"iterator": data.iterator_state(iterator).decode()}, meta={**meta, "step": step})

    unit = "tokens" if run.model_cfg.family == "gpt" else "images"
    per_example = run.model_cfg.context if unit == "tokens" else 1
    losses, last_eval = [], {}
    end = steps if stop_at is None else min(stop_at, steps)
    bar = progress(start, steps, enabled=not quiet)
    t_start = t_log = time.perf_counter()
    n_log = 0
    for step in range(start + 1, end + 1):
        batch = run.global_batch(next(iterator))
        run.params, run.opt_state, metrics = run.step_fn(run.params, run.opt_state, batch)
        n_log += 1
        if step % config.train.log_every == 0 or step == end:
            loss = float(metrics["loss"])
            losses.append(loss)
            now = time.perf_counter()
            rate = n_log * config.train.batch_size * per_example / (now - t_log)
            t_log, n_log = now, 0
            values = {"loss": loss, "learning_rate": float(run.schedule(step - 1)), f"{unit}_per_s": rate}
            writer.write(step, "train", values)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{values['learning_rate']:.3g}", **{f"{unit}/s": f"{rate:,.0f}"})
        bar.update(1)
        if config.train.eval_every and step % config.train.eval_every == 0 and step != steps:
            last_eval = run.evaluate()
            writer.write(step, "eval", last_eval)
        if config.train.checkpoint_every and step % config.train.checkpoint_every == 0:
            save(step)
    bar.close()
    if end > start and (end == steps or stop_at is not None):
        save(end)
    if end == steps:
        last_eval = run.evaluate()
        writer.write(steps, "eval", last_eval)
    ckpt.close()
    result = {"train_losses": losses, "eval": last_eval, "step": end, "seconds": time.perf_counter() - t_start}
    if end == steps and run.model_cfg.family == "gpt" and config.train.sample_tokens:
        from zoo.sample import generate

        text = generate(run.model(), config.train.sample_prompt, max_new_tokens=config.train.sample_tokens,
                        temperature=0.8, top_k=40, seed=config.seed)
        result["sample"] = text.decode("utf-8", errors="replace")
        (run.workdir / "sample.txt").write_text(result["sample"])
    writer.close()
    if not quiet and jax.process_index() == 0:
        print(json.dumps({"step": end, "eval": last_eval, "seconds": round(result["seconds"], 1)}))
        if "sample" in result:
            print("--- sample ---\n" + config.train.sample_prompt + result["sample"])
    return result


def evaluate(config: ml_collections.ConfigDict, source: str) -> dict:
    """Evaluation metrics of ``config``'s model with params from ``source`` (workdir, .msgpack or pretrained name)."""
    run = Run(config, tempfile.mkdtemp(prefix="modzoo-eval-"))
    _, run.eval_ds = datasets(config, run.model_cfg)
    _init_params(run, source)
    return run.evaluate()
