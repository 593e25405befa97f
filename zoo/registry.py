"""The model registry: register, list, configure and create models by name (timm-style).

A registered entry is a frozen config dataclass with ``build(*, rngs)``,
``example_batch(batch_size, key)``, ``tiny()`` (the same config shrunk for the
registry-generated tests) and ``family`` and ``modality`` class attributes
(``zoo.models.base.MODALITIES``: what the model reads). A
duplicate name and an unknown name or override are errors, never warnings.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch

from flax import nnx

from zoo.models.base import modality_of
from zoo.nn import Module, assign_geometry

_REGISTRY: dict[str, object] = {}


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=3, cutoff=0.5)
    rest = sorted(set(options) - set(close))
    return ", ".join(close + rest)


def register(name: str, config) -> object:
    """Add ``config`` (a frozen dataclass with ``build(*, rngs)``) to the zoo under ``name``."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"register({name!r}, ...) needs a dataclass instance, got {type(config).__name__}")
    if not callable(getattr(config, "build", None)):
        raise TypeError(f"register({name!r}, ...): {type(config).__name__} has no build(*, rngs) method")
    modality_of(config)
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered; choose another name")
    _REGISTRY[name] = config
    return config


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, sorted, optionally filtered by a glob such as ``"gpt-*"``."""
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def get_config(name: str, **overrides):
    """The config registered as ``name`` with ``overrides`` applied; allocates nothing."""
    try:
        config = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available (closest first): {_suggest(name, _REGISTRY)}") from None
    fields = {f.name for f in dataclasses.fields(config)}
    for key in overrides:
        if key not in fields:
            raise TypeError(f"unknown override {key!r} for model {name!r}; "
                            f"fields (closest first): {_suggest(key, fields)}")
    return dataclasses.replace(config, **overrides)


def create(name: str, *, rngs: nnx.Rngs, **overrides) -> Module:
    """Build model ``name`` (with ``overrides``) and write its geometry into every parameter."""
    return build(get_config(name, **overrides), rngs=rngs)


def build(config, *, rngs: nnx.Rngs) -> Module:
    """Build a model from a config and assign its modular-norm geometry."""
    model = config.build(rngs=rngs)
    return assign_geometry(model)
