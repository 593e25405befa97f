"""Pieces every experiment config shares: the config skeleton, optimizer sections and arg parsing."""

from __future__ import annotations

import dataclasses

import ml_collections
from ml_collections import config_dict

import zoo
from optim import OPTIMIZERS


def parse_arg(arg: str | None, allowed=("test", "optim")) -> dict[str, str]:
    """``"test,optim=muon"`` -> ``{"test": "1", "optim": "muon"}``; a key outside ``allowed`` is an error."""
    out = {}
    for part in filter(None, (arg or "").split(",")):
        key, sep, value = part.partition("=")
        out[key.strip()] = value.strip() if sep else "1"
    unknown = sorted(set(out) - set(allowed))
    if unknown:
        raise ValueError(f"unknown config arg {', '.join(unknown)}; this config takes {', '.join(allowed)} "
                         "(e.g. --config FILE:test,optim=muon)")
    return out


def model_section(name: str, **fields) -> ml_collections.ConfigDict:
    """``config.model``: the zoo name plus every field of its config as a typed, unset placeholder.

    So ``--config.model.width=256`` (any field: width, depth, heads, context, ...)
    works from the command line with its type checked; unset fields keep the
    preset's value, ``fields`` set some here.
    """
    preset = zoo.get_config(name)
    section = {"name": name}
    for f in dataclasses.fields(preset):
        default = getattr(preset, f.name)
        if default is not None:
            section[f.name] = config_dict.placeholder(type(default))
    c = ml_collections.ConfigDict(section)
    c.update(fields)
    return c


def base(*, model: dict, data: dict, optim: str, learning_rates: dict[str, float], steps: int,
         batch_size: int, arg: str | None) -> ml_collections.ConfigDict:
    """A full run config. ``learning_rates`` gives each optimizer's default rate."""
    args = parse_arg(arg)
    name = args.get("optim", optim)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r} in config arg; choose one of {', '.join(OPTIMIZERS)}")
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.init_from = ""
    model = dict(model)
    c.model = model_section(model.pop("name"), **model)
    c.data = ml_collections.ConfigDict(data)
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})

    o = c.optim = ml_collections.ConfigDict()
    o.name = name
    o.learning_rate = config_dict.placeholder(float)
    o.learning_rates = learning_rates
    o.warmup_steps = 0
    o.decay_fraction = 1.0  # linear decay to 0 over the last fraction of steps
    o.clip_norm = config_dict.placeholder(float)
    o.scion = {"momentum": 0.1, "constrained": False}
    o.normalized_adam = {"b1": 0.9, "b2": 0.99, "weight_decay": 0.0}
    o.normalized_sgd = {"momentum": 0.9}
    o.muon = {"beta": 0.95, "adam_b1": 0.9, "adam_b2": 0.99, "weight_decay": 0.0}
    o.adamw = {"b1": 0.9, "b2": 0.99, "weight_decay": 0.0}
    for section in OPTIMIZERS:  # --config.optim.NAME.mu_dtype=bfloat16 keeps the momentum in bf16 (unset: f32)
        o[section].mu_dtype = config_dict.placeholder(str)

    t = c.train = ml_collections.ConfigDict()
    t.steps = steps
    t.batch_size = batch_size
    t.eval_batch_size = 64
    t.log_every = 25
    t.eval_every = 500
    t.eval_batches = 0  # evaluate on the first this many batches of the evaluation split (0: the whole split)
    t.checkpoint_every = 500
    t.norm_every = 100  # modular norms of the weights and of the last update, logged every this many steps (0: off)
    t.keep = 2  # checkpoints kept (>= 1)
    t.skip_nonfinite = 0  # >0: up to this many non-finite steps are skipped (update not applied), then it stops
    t.sample_tokens = 300
    t.sample_prompt = "\n"
    c.test = "test" in args
    return c
