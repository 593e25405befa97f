"""Orbax checkpoints of a run's whole state (params, optimizer state, data-iterator state, step), verified on restore.

Saves are asynchronous. Once a save has committed (checked at the next save,
or at ``wait``/``close``), the sha256 of every file it wrote goes into
``<step>/modzoo_manifest.json`` (:mod:`zoo.train.manifest`): that seals it.
Only then are older checkpoints deleted, by this module rather than by Orbax:
the newest ``max_to_keep`` sealed ones stay, and a checkpoint without a
manifest is never deleted.

A restore tries checkpoints newest first and takes the first good one: its
files match its manifest, its JSON items parse, its arrays have the run's
structure, load, and are finite. A checkpoint without a manifest (the run was
killed between Orbax's commit and the manifest, or an older modzoo wrote it) is
taken when Orbax finalized it and it passes the other checks; a writer then
records its manifest. Each checkpoint skipped is reported in one line naming its
step and the file at fault; a writer moves it aside to ``<step>.corrupt`` (it
is never deleted), so the resumed run can save that step again. Arrays are
restored into ``jax.ShapeDtypeStruct`` targets that carry the new run's
shardings, so a checkpoint restores onto any mesh.
"""

from __future__ import annotations

import itertools
import pathlib
import sys

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from zoo.pretrained import LEGACY_NAMES, renamed
from zoo.train import manifest

RUN_ITEMS = ("params", "opt_state", "data", "meta")
"""What a run's checkpoint holds: two array trees and two JSON items."""


class CheckpointError(RuntimeError):
    """A checkpoint, or every checkpoint of a folder, is unusable; the one-line message names the step and file."""


class CheckpointMismatch(ValueError):
    """A readable checkpoint holds arrays of another structure or shape than the restore target's."""


def abstract_like(tree, shardings):
    """ShapeDtypeStructs with the given shardings: the restore target for ``tree``."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def _all_finite(tree) -> bool:
    """Whether every floating-point leaf of ``tree`` is finite everywhere."""
    return all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact))


def _leaf_shapes(tree) -> dict[str, tuple]:
    """Each leaf's path (dict keys, attribute names and indices written alike) and shape."""
    def key(k):
        return str(next((getattr(k, a) for a in ("key", "name", "idx") if hasattr(k, a)), k))

    return {"/".join(key(k) for k in path): tuple(x.shape) for path, x in jax.tree_util.tree_leaves_with_path(tree)}


def _first_line(e: BaseException) -> str:
    """The innermost cause of ``e`` (tensorstore's own message, under Orbax's wrapper) on one short line."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text[:200]}"


class _Manager(ocp.CheckpointManager):
    """Orbax's manager without its own calls to JAX's preemption sync point: only the run loop may make them (one
    per step, :mod:`zoo.train.preemption`). Orbax's, with older steps from its finalize thread, would move back the
    count the processes agree on and could leave them stopping at different steps."""

    def reached_preemption(self, step: int) -> bool:
        return False


class Checkpointer:
    """An Orbax ``CheckpointManager`` in ``<workdir>/checkpoints`` with manifests and a keep policy.

    ``read_only`` opens an existing folder for restores only: nothing is
    written, sealed, moved or deleted.
    """

    def __init__(self, workdir: str | pathlib.Path, *, max_to_keep: int = 3, read_only: bool = False):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be at least 1 (train.keep), got {max_to_keep}")
        self.directory = pathlib.Path(workdir).absolute() / "checkpoints"
        self.keep, self.read_only = max_to_keep, read_only
        self.manager = _Manager(self.directory, options=ocp.CheckpointManagerOptions(create=not read_only))
        self._pending: int | None = None
        self._syncs = 0

    def latest_step(self) -> int | None:
        """The newest step in the folder that Orbax finalized (sealed or not, good or not), or None."""
        return self.manager.latest_step()

    def save(self, step: int, *, params, opt_state, data_state: dict, meta: dict) -> None:
        """Start an asynchronous save of the run's whole state at ``step`` (the previous save is sealed first)."""
        self.wait()
        self.manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            opt_state=ocp.args.StandardSave(opt_state),
            data=ocp.args.JsonSave(data_state),
            meta=ocp.args.JsonSave(meta),
        ), force=True)
        self._pending = step

    def wait(self) -> None:
        """Block until the pending save has committed, write its manifest, then delete what the keep policy allows.

        Of the sealed checkpoints (those with a manifest) the newest
        ``max_to_keep`` stay; older sealed ones go. Unsealed ones stay.
        """
        step, self._pending = self._pending, None
        self.manager.wait_until_finished()  # raises if the save failed: then nothing is sealed or deleted
        if step is None:
            return
        if jax.process_index() == 0:
            manifest.write(self.directory / str(step))
        self._sync("sealed")
        sealed = sorted(s for s in self.manager.all_steps() if manifest.exists(self.directory / str(s)))
        for old in sealed[:-self.keep]:
            self.manager.delete(old)

    def close(self) -> None:
        """Seal the pending save (see :meth:`wait`) and release Orbax's resources."""
        self.wait()
        self.manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def restore(self, step: int, *, params, opt_state=None, check_meta=None) -> dict:
        """Checkpoint ``step``'s params (and, with ``opt_state``, the whole run state) if it is good.

        ``params`` and ``opt_state`` are abstract targets (ShapeDtypeStructs with
        shardings). Without ``opt_state`` only the params are read (and
        verified); with it the result also holds ``data`` and ``meta``, and
        ``check_meta(meta)`` may raise to refuse the checkpoint before any array
        is read. Raises :class:`CheckpointError` if the checkpoint is corrupt,
        :class:`CheckpointMismatch` if it is intact but of another structure.
        """
        items = RUN_ITEMS if opt_state is not None else ("params",)
        problem = manifest.check(self.directory / str(step), items)
        if problem:
            raise CheckpointError(f"checkpoint {step} is corrupt ({problem})")
        out = {}
        if opt_state is not None:
            for item in ("data", "meta"):
                out[item] = self._read(step, item, ocp.args.JsonRestore())
            if check_meta is not None:
                check_meta(out["meta"])
        for item, target in (("params", params), ("opt_state", opt_state)):
            if target is None:
                continue
            self._check_structure(step, item, target)
            out[item] = self._read(step, item, ocp.args.StandardRestore(target))
            if not _all_finite(out[item]):
                raise CheckpointError(f"checkpoint {step} is corrupt ({item} holds non-finite values)")
        return out

    def restore_latest_good(self, *, params, opt_state=None, check_meta=None) -> tuple[int | None, dict | None]:
        """``(step, restored)`` of the newest good checkpoint (see :meth:`restore`), or ``(None, None)`` if none exist.

        Every newer one skipped is reported in one line on stderr and, unless
        read-only, moved aside to ``<step>.corrupt``. Raises
        :class:`CheckpointError` (one line naming each checkpoint's problem) when
        checkpoints exist but none is good.
        """
        skipped = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.restore(step, params=params, opt_state=opt_state, check_meta=check_meta)
            except CheckpointError as e:
                skipped.append((step, str(e)))
                continue
            self._settle(step, skipped)
            return step, restored
        if skipped:
            raise CheckpointError(f"no usable checkpoint in {self.directory}: {'; '.join(e for _, e in skipped)}; "
                                  "move that folder aside and train again")
        return None, None

    def _read(self, step: int, item: str, args):
        try:
            return self.manager.restore(step, args=ocp.args.Composite(**{item: args}))[item]
        except Exception as e:  # Orbax and tensorstore raise many kinds (plain Exception too) for damaged files
            raise CheckpointError(f"checkpoint {step} is corrupt ({item}/ could not be read: {_first_line(e)})") \
                from None

    def _check_structure(self, step: int, item: str, target) -> None:
        """Compare ``item``'s recorded array paths and shapes with ``target``'s before reading any array."""
        folder = self.directory / str(step) / item
        if not folder.is_dir():
            raise CheckpointError(f"checkpoint {step} is corrupt ({item}/ is missing)")
        try:
            got = _leaf_shapes(ocp.StandardCheckpointHandler().metadata(folder).tree)
        except Exception as e:  # unreadable _METADATA
            raise CheckpointError(f"checkpoint {step} is corrupt ({item}/_METADATA could not be read: "
                                  f"{_first_line(e)})") from None
        want = _leaf_shapes(target)
        if got != want:
            missing, extra = sorted(set(want) - set(got))[:3], sorted(set(got) - set(want))[:3]
            shapes = [f"{k} {got[k]} vs {want[k]}" for k in sorted(set(got) & set(want)) if got[k] != want[k]][:3]
            raise CheckpointMismatch(f"checkpoint {step}'s {item} has another structure (missing {missing}, "
                                     f"unexpected {extra}, shapes {shapes})")

    def _settle(self, step: int, skipped: list[tuple[int, str]]) -> None:
        """After restoring ``step``: report (and move aside) the newer ones skipped; seal ``step`` if unsealed."""
        folder = self.directory / str(step)
        unsealed = not manifest.exists(folder)
        primary = jax.process_index() == 0
        moved = {}
        if not self.read_only and (skipped or unsealed):
            if primary:
                moved = {s: self._move_aside(s) for s, _ in skipped}
                if unsealed:
                    manifest.write(folder)
            self._sync("settled")
            self.manager.reload()
        if not primary:
            return
        for s, problem in skipped:
            where = f"; moved to {moved[s]}" if s in moved else ""
            print(f"modzoo: {problem}{where}; restoring checkpoint {step}", file=sys.stderr)
        if unsealed:
            sealed = "" if self.read_only else ", and its checksums are recorded now"
            print(f"modzoo: checkpoint {step} has no checksum manifest (its run stopped before writing one, or an "
                  f"older modzoo saved it); it loads with finite values, so it is used{sealed}", file=sys.stderr)

    def _move_aside(self, step: int) -> str:
        for n in itertools.count(1):
            name = f"{step}.corrupt" if n == 1 else f"{step}.corrupt-{n}"
            if not (self.directory / name).exists():
                (self.directory / str(step)).rename(self.directory / name)
                return name

    def _sync(self, what: str) -> None:
        """A barrier across processes (nothing with one process), so all see what process 0 wrote."""
        self._syncs += 1
        ocp.multihost.sync_global_processes(f"modzoo_checkpoint_{what}_{self._syncs}")


def restore_params(path: str | pathlib.Path, target) -> dict:
    """The params of the newest good checkpoint under ``path`` (a workdir or its checkpoints folder), read-only.

    Raises FileNotFoundError if there is no checkpoint, :class:`CheckpointError`
    if none is good, :class:`CheckpointMismatch` if the params have another structure.
    """
    path = pathlib.Path(path).absolute()
    workdir = path.parent if path.name == "checkpoints" and not (path / "checkpoints").is_dir() else path
    if not (workdir / "checkpoints").is_dir():
        raise FileNotFoundError(f"no checkpoint under {path}; give a workdir that holds a finished run")
    with Checkpointer(workdir, read_only=True) as ckpt:
        try:
            step, out = ckpt.restore_latest_good(params=target)
            legacy = False
        except CheckpointMismatch as mismatch:
            # Written before parameter paths were renamed (``blocks.step`` -> ``blocks.layers``)?
            old_target = renamed(target, {new: old for old, new in LEGACY_NAMES.items()})
            if old_target == target:
                raise
            try:
                step, out = ckpt.restore_latest_good(params=old_target)
            except CheckpointMismatch:
                raise mismatch from None  # not an old file either: report the mismatch with today's names
            legacy = True
    if step is None:
        raise FileNotFoundError(f"no checkpoint under {path}; give a workdir that holds a finished run")
    return renamed(out["params"]) if legacy else out["params"]
