"""Orbax checkpoints of everything a run needs: params, optimizer state, data-iterator state, step.

Saves are asynchronous (``wait`` before exit); restores go onto whatever mesh
the new run has, because every array is restored into a target
``jax.ShapeDtypeStruct`` carrying the new sharding (Orbax's restore-with-sharding pattern).
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


def abstract_like(tree, shardings):
    """ShapeDtypeStructs with the given shardings: the restore target for ``tree``."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


class Checkpointer:
    """An Orbax ``CheckpointManager`` in ``<workdir>/checkpoints`` with a keep policy."""

    def __init__(self, workdir: str | pathlib.Path, *, max_to_keep: int = 3):
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, *, params, opt_state, data_state: dict, meta: dict) -> None:
        """Start an asynchronous save of the run's whole state at ``step``."""
        self.manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            opt_state=ocp.args.StandardSave(opt_state),
            data=ocp.args.JsonSave(data_state),
            meta=ocp.args.JsonSave(meta),
        ), force=True)

    def meta(self, step: int) -> dict:
        """Only the metadata saved with ``step`` (cheap: no arrays are read)."""
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, step: int, *, params, opt_state) -> dict:
        """Restore ``step`` into the given abstract targets (ShapeDtypeStructs with shardings)."""
        out = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(params),
            opt_state=ocp.args.StandardRestore(opt_state),
            data=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore(),
        ))
        return {k: out[k] for k in ("params", "opt_state", "data", "meta")}

    def wait(self) -> None:
        """Block until pending saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def restore_params(path: str | pathlib.Path, target) -> dict:
    """Only the params of the latest checkpoint under ``path`` (a workdir or its checkpoints folder)."""
    path = pathlib.Path(path).absolute()
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    manager = ocp.CheckpointManager(directory)
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"no checkpoint under {directory}; give a workdir that holds a finished run")
    try:
        try:
            out = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target)))
            return out["params"]
        except (ValueError, KeyError):
            # Written before parameter paths were renamed (``blocks.step`` -> ``blocks.layers``)?
            from zoo.pretrained import LEGACY_NAMES, renamed

            legacy = renamed(target, {new: old for old, new in LEGACY_NAMES.items()})
            if legacy == target:
                raise
            out = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(legacy)))
            return renamed(out["params"])
    finally:
        manager.close()
