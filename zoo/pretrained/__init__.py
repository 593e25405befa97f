"""Pretrained weights shipped with the package, verified by checksum on load.

``catalog.json`` (beside this file) records for each entry the zoo model and
overrides it instantiates, the config and command that trained it, its
evaluation metric and the sha256 of its weights file (flax msgpack of the
params' pure dict) and, for a language model that reads a tokenizer's ids, of
its tokenizer file. ``load_params`` also accepts a run's workdir (its latest
Orbax checkpoint) or a ``.msgpack`` path, for ``--config.init_from``.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
from flax import nnx, serialization

from data.atomic import write_bytes
from data.checksum import file_digest
from zoo.registry import create

HERE = pathlib.Path(__file__).resolve().parent
CATALOG = HERE / "catalog.json"


def catalog() -> dict[str, dict]:
    """Every pretrained entry, keyed by name."""
    return json.loads(CATALOG.read_text()) if CATALOG.exists() else {}


def _entry(name: str) -> dict:
    entries = catalog()
    if name not in entries:
        raise KeyError(f"no pretrained weights named {name!r}; available: {', '.join(sorted(entries)) or 'none'}")
    return entries[name]


def _verified(file: str, sha256: str) -> pathlib.Path:
    path = HERE / file
    if not path.exists():
        raise FileNotFoundError(f"pretrained file {path} is missing; reinstall modzoo")
    digest = file_digest(path)
    if digest != sha256:
        raise ValueError(f"pretrained file {path} is corrupt: sha256 {digest[:12]}... does not match the catalog's "
                         f"{sha256[:12]}...; reinstall modzoo")
    return path


def weights_path(name: str) -> pathlib.Path:
    """The verified weights file of entry ``name`` (raises if its checksum does not match the catalog)."""
    entry = _entry(name)
    return _verified(entry["file"], entry["sha256"])


def tokenizer_path(name: str) -> pathlib.Path | None:
    """The verified tokenizer file (data.tokenizer) of language-model entry ``name``; None if it reads bytes."""
    entry = _entry(name).get("tokenizer")
    return None if entry is None else _verified(entry["file"], entry["sha256"])


def tokenizer(name: str):
    """The tokenizer (a data.tokenizer.BPE) that language-model entry ``name`` reads; None if it reads bytes."""
    from data.tokenizer import load

    path = tokenizer_path(name)
    return None if path is None else load(path)


LEGACY_NAMES = {"step": "layers"}
"""Parameter-path keys renamed since files were first written: ``blocks.step`` became ``blocks.layers``."""


def renamed(tree, names: dict[str, str] = LEGACY_NAMES):
    """``tree`` (nested dicts) with every key in ``names`` replaced, so files written before a rename still load."""
    if not isinstance(tree, dict):
        return tree
    return {names.get(k, k): renamed(v, names) for k, v in tree.items()}


def _check_against(params, target, source: str):
    got = {jax.tree_util.keystr(p): np.shape(x) for p, x in jax.tree_util.tree_leaves_with_path(params)}
    want = {jax.tree_util.keystr(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(target)}
    if got != want:
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        shapes = [f"{k}: {got[k]} vs {want[k]}" for k in sorted(set(got) & set(want)) if got[k] != want[k]][:3]
        raise ValueError(f"{source} does not match this model's architecture (missing {missing}, unexpected "
                         f"{extra}, shape mismatches {shapes}); use the same model config it was trained with")


def load_params(source: str, target):
    """Params from a catalog name, a ``.msgpack`` file or a run workdir, placed like ``target``.

    ``target`` is a pure-dict tree of ``jax.ShapeDtypeStruct`` with shardings.
    """
    path = pathlib.Path(source)
    if source in catalog() or path.suffix == ".msgpack":
        file = weights_path(source) if source in catalog() else path
        if not file.is_file():
            raise FileNotFoundError(f"init source {source} does not exist; give a .msgpack file, a run's workdir or "
                                    f"a pretrained name ({', '.join(catalog()) or 'none'})")
        params = renamed(serialization.msgpack_restore(file.read_bytes()))
        _check_against(params, target, str(source))
        return jax.tree.map(lambda x, t: jax.device_put(np.asarray(x, t.dtype), t.sharding), params, target)
    if path.is_dir():
        from zoo.train.checkpoint import restore_params

        try:
            return restore_params(path, target)
        except (ValueError, KeyError) as e:
            raise ValueError(f"checkpoint in {path} does not match this model's architecture ({e}); "
                             "use the same model config it was trained with") from None
    raise FileNotFoundError(f"init source {source!r} is neither a pretrained name ({', '.join(catalog()) or 'none'}),"
                            " a .msgpack file nor a run directory")


def load(name: str, *, pretrained: bool = True, seed: int = 0) -> nnx.Module:
    """The model of pretrained entry ``name``, with its trained weights if ``pretrained``."""
    entry = _entry(name)
    model = create(entry["model"], rngs=nnx.Rngs(seed), **entry.get("overrides", {}))
    if pretrained:
        state = nnx.state(model)
        params = renamed(serialization.msgpack_restore(weights_path(name).read_bytes()))
        _check_against(params, nnx.to_pure_dict(state), name)
        nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, params))
        nnx.update(model, state)
    return model


def export(params, name: str, *, model: str, overrides: dict, config: str, command: str, metric: dict,
           tokenizer: pathlib.Path | None = None) -> pathlib.Path:
    """Write ``params`` as ``<name>.msgpack`` beside the catalog (atomically), with a copy of the run's
    ``tokenizer`` file as ``<name>.tokenizer.json`` if it has one, and record the entry."""
    blob = serialization.msgpack_serialize(jax.tree.map(lambda x: np.asarray(jax.device_get(x)), params))
    path = HERE / f"{name}.msgpack"
    write_bytes(path, blob)
    entries = catalog()
    entries[name] = {"model": model, "overrides": overrides, "file": path.name, "sha256": file_digest(path),
                     "bytes": path.stat().st_size, "config": config, "command": command, "metric": metric}
    copy = HERE / f"{name}.tokenizer.json"
    if tokenizer is not None:
        write_bytes(copy, pathlib.Path(tokenizer).read_bytes())
        entries[name]["tokenizer"] = {"file": copy.name, "sha256": file_digest(copy)}
    else:
        copy.unlink(missing_ok=True)
    write_bytes(CATALOG, (json.dumps(entries, indent=2, sort_keys=True) + "\n").encode())
    return path
