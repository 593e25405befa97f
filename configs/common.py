"""Pieces every experiment config shares: the config skeleton, optimizer sections and arg parsing."""

from __future__ import annotations

import ml_collections

OPTIMIZERS = ("scion", "normalized_adam", "muon", "adamw")


def parse_arg(arg: str | None) -> dict[str, str]:
    """``"test,optim=muon"`` -> ``{"test": "1", "optim": "muon"}``."""
    out = {}
    for part in filter(None, (arg or "").split(",")):
        key, sep, value = part.partition("=")
        out[key.strip()] = value.strip() if sep else "1"
    return out


def base(*, model: dict, data: dict, optim: str, learning_rates: dict[str, float], steps: int,
         batch_size: int, arg: str | None) -> ml_collections.ConfigDict:
    """A full run config. ``learning_rates`` gives each optimizer's default rate."""
    args = parse_arg(arg)
    unknown = set(args) - {"test", "optim"}
    if unknown:
        raise ValueError(f"unknown config args {sorted(unknown)}; use 'test' and/or 'optim=NAME'")
    name = args.get("optim", optim)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r} in config arg; choose one of {OPTIMIZERS}")
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.init_from = ""
    c.model = ml_collections.ConfigDict(model)
    c.data = ml_collections.ConfigDict(data)
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})

    o = c.optim = ml_collections.ConfigDict()
    o.name = name
    o.learning_rate = ml_collections.config_dict.placeholder(float)
    o.learning_rates = learning_rates
    o.warmup_steps = 0
    o.decay_fraction = 1.0  # linear decay to 0 over the last fraction of steps
    o.clip_norm = ml_collections.config_dict.placeholder(float)
    o.scion = {"momentum": 0.1, "constrained": False}
    o.normalized_adam = {"b1": 0.9, "b2": 0.99}
    o.muon = {"beta": 0.95, "adam_b1": 0.9, "adam_b2": 0.99, "weight_decay": 0.0}
    o.adamw = {"b1": 0.9, "b2": 0.99, "weight_decay": 0.0}

    t = c.train = ml_collections.ConfigDict()
    t.steps = steps
    t.batch_size = batch_size
    t.eval_batch_size = 64
    t.log_every = 25
    t.eval_every = 500
    t.checkpoint_every = 500
    t.keep = 2
    t.sample_tokens = 300
    t.sample_prompt = "\n"
    c.test = "test" in args
    return c
