"""Checkpoint integrity: manifests, fallback to the last good checkpoint, a keep policy that never loses the good ones.

One run (steps 1..12 of an 18-step test config, a checkpoint every 3 steps,
keep 3, so checkpoints 6, 9 and 12) is trained once; each test damages a copy.
"""

import re
import shutil

import jax
import numpy as np
import pytest

from configs import gpt_shakespeare
from zoo.cli import main
from zoo.train import Run, manifest, train
from zoo.train.checkpoint import RUN_ITEMS, Checkpointer, abstract_like, restore_params

FLAGS = ["--config", "configs/gpt_shakespeare.py:test", "--config.train.steps=18", "--config.train.keep=3",
         "--config.train.eval_every=0", "--config.train.sample_tokens=0", "--config.mesh.data=1"]


def _config(keep=3):
    c = gpt_shakespeare.get_config("test")
    c.train.update({"steps": 18, "checkpoint_every": 3, "keep": keep, "eval_every": 0, "sample_tokens": 0,
                    "log_every": 1})
    c.mesh.update({"data": 1, "fsdp": 1, "tensor": 1})
    return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The uninterrupted run's workdir (stopped after step 12), its losses and the abstract restore targets."""
    workdir = tmp_path_factory.mktemp("integrity") / "run"
    losses = train(_config(), workdir, stop_at=12, quiet=True)["train_losses"]
    run = Run(_config())
    targets = dict(params=abstract_like(run.params, run.param_shardings),
                   opt_state=abstract_like(run.opt_state, run.opt_shardings))
    return workdir, losses, targets


@pytest.fixture
def workdir(trained, tmp_path):
    """A copy of the trained workdir to damage."""
    copy = tmp_path / "run"
    shutil.copytree(trained[0], copy)
    return copy


def _step(workdir, step):
    return workdir / "checkpoints" / str(step)


def _entries(workdir):
    return sorted(p.name for p in (workdir / "checkpoints").iterdir())


def _largest(folder):
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _garbage(path):
    """Overwrite 4 KiB in the middle of ``path`` with random bytes (its size stays the same)."""
    blob = bytearray(path.read_bytes())
    at = max(0, len(blob) // 2 - 2048)
    blob[at:at + 4096] = np.random.default_rng(0).bytes(4096)[:len(blob) - at]
    path.write_bytes(bytes(blob))
    return path


def _overwrite(path):
    """Overwrite all of ``path`` with 0xFF bytes.

    Without a manifest only the reader can notice damage. A 4 KiB patch of random bytes that lands in a stored
    (uncompressed) run of floats reads back as random floats, all finite now and then (CI saw it once); a file
    overwritten whole leaves no frame that decodes.
    """
    path.write_bytes(b"\xff" * path.stat().st_size)
    return path


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _empty(path):
    path.write_bytes(b"")
    return path


def _warnings(captured_err):
    return [line for line in captured_err.splitlines() if line.startswith("modzoo:")]


def _read(workdir, step, **targets):
    with Checkpointer(workdir, read_only=True) as ckpt:
        return ckpt.restore(step, **targets)


def _restore_latest(workdir, targets):
    with Checkpointer(workdir) as ckpt:
        return ckpt.restore_latest_good(**targets)


def _same_arrays(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_garbage_in_the_latest_params_is_reported_and_the_run_resumes_from_the_previous_checkpoint(
        trained, workdir, capsys):
    source, losses, targets = trained
    bad = _garbage(_largest(_step(workdir, 12) / "params"))
    out = train(_config(), workdir, stop_at=12, quiet=True)
    name = bad.relative_to(_step(workdir, 12)).as_posix()
    assert _warnings(capsys.readouterr().err) == [
        f"modzoo: checkpoint 12 is corrupt ({name} sha256 mismatch); moved to 12.corrupt; restoring checkpoint 9"]
    assert out["train_losses"] == losses[9:12]  # steps 10..12 again, exactly as the uninterrupted run
    assert _entries(workdir) == ["12", "12.corrupt", "6", "9"]  # the good ones stay, the damaged one is kept aside
    for step in (6, 9, 12):
        assert manifest.check(_step(workdir, step), RUN_ITEMS) is None
    again, original = _read(workdir, 12, **targets), _read(source, 12, **targets)
    assert _same_arrays((again["params"], again["opt_state"]), (original["params"], original["opt_state"]))
    assert again["data"] == original["data"]


DAMAGE = {  # what is damaged in checkpoint 12, the problem its manifest finds, the problem Orbax's reader finds
    "truncated params": (lambda ck: _truncate(_largest(ck / "params")),
                         r"params/\S+ has \d+ bytes, \d+ were written", r"params/ could not be read: \w+: .+"),
    "overwritten opt_state": (lambda ck: _overwrite(_largest(ck / "opt_state")), r"opt_state/\S+ sha256 mismatch",
                              r"opt_state/ could not be read: \w+: .+"),
    "empty meta": (lambda ck: _empty(ck / "meta" / "metadata"), r"meta/metadata has 0 bytes, \d+ were written",
                   r"meta/ could not be read: JSONDecodeError: .+"),
    "missing params": (lambda ck: shutil.rmtree(ck / "params"), r"params/ is missing", r"params/ is missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_checkpoint_is_caught_by_its_manifest(trained, workdir, capsys, damage):
    _, losses, _ = trained
    harm, problem, _ = DAMAGE[damage]
    harm(_step(workdir, 12))
    out = train(_config(), workdir, stop_at=12, quiet=True)
    (line,) = _warnings(capsys.readouterr().err)
    assert re.fullmatch(rf"modzoo: checkpoint 12 is corrupt \({problem}\); moved to 12.corrupt; "
                        r"restoring checkpoint 9", line), line
    assert out["train_losses"] == losses[9:12]
    assert _entries(workdir) == ["12", "12.corrupt", "6", "9"]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_without_a_manifest_damage_is_caught_when_reading(trained, workdir, capsys, damage):
    """A run killed after Orbax's commit but before the manifest: the reader's errors are caught the same way."""
    source, _, targets = trained
    harm, _, problem = DAMAGE[damage]
    (_step(workdir, 12) / manifest.NAME).unlink()
    harm(_step(workdir, 12))
    step, restored = _restore_latest(workdir, targets)
    (line,) = _warnings(capsys.readouterr().err)
    assert re.fullmatch(rf"modzoo: checkpoint 12 is corrupt \({problem}\); moved to 12.corrupt; "
                        r"restoring checkpoint 9", line), line
    assert step == 9 and _entries(workdir) == ["12.corrupt", "6", "9"]
    assert _same_arrays(restored["params"], _read(source, 9, **targets)["params"])


def test_a_checkpoint_with_non_finite_values_is_corrupt(trained, workdir, capsys):
    _, _, targets = trained
    with Checkpointer(workdir) as ckpt:
        step, state = ckpt.restore_latest_good(**targets)
        nan = jax.tree.map(lambda x: x * np.nan, state["params"])
        ckpt.save(15, params=nan, opt_state=state["opt_state"], data_state=state["data"], meta=state["meta"])
    assert step == 12 and manifest.exists(_step(workdir, 15))  # sealed: its files are intact
    step, _ = _restore_latest(workdir, targets)
    assert step == 12
    assert _warnings(capsys.readouterr().err) == [
        "modzoo: checkpoint 15 is corrupt (params holds non-finite values); moved to 15.corrupt; "
        "restoring checkpoint 12"]


def test_a_checkpoint_without_manifest_is_used_if_it_loads_and_is_never_deleted_unsealed(workdir, capsys):
    for step in (6, 12):  # 12: killed between Orbax's commit and the manifest; 6: as an older modzoo wrote it
        (_step(workdir, step) / manifest.NAME).unlink()
    out = train(_config(keep=2), workdir, stop_at=15, quiet=True)
    assert len(out["train_losses"]) == 3  # steps 13..15: it resumed from 12
    assert _warnings(capsys.readouterr().err) == [
        "modzoo: checkpoint 12 has no checksum manifest (its run stopped before writing one, or an older modzoo "
        "saved it); it loads with finite values, so it is used, and its checksums are recorded now"]
    assert manifest.exists(_step(workdir, 12)) and manifest.check(_step(workdir, 12), RUN_ITEMS) is None
    # keep 2: 9 was sealed and is superseded by 12 and 15, so it went; 6 was never sealed, so it stays
    assert _entries(workdir) == ["12", "15", "6"]


def test_when_every_checkpoint_is_corrupt_the_run_stops_with_one_line_and_touches_nothing(workdir):
    names = {step: _garbage(_largest(_step(workdir, step) / "params")).relative_to(_step(workdir, step)).as_posix()
             for step in (6, 9, 12)}
    before = _entries(workdir)
    with pytest.raises(SystemExit) as e:
        main(["train", *FLAGS, "--workdir", str(workdir)])
    problems = "; ".join(f"checkpoint {s} is corrupt ({names[s]} sha256 mismatch)" for s in (12, 9, 6))
    assert e.value.code == (f"modzoo train: no usable checkpoint in {workdir / 'checkpoints'}: {problems}; "
                            "move that folder aside and train again")
    assert _entries(workdir) == before


def test_eval_of_a_workdir_whose_only_checkpoint_is_corrupt_is_an_error(workdir):
    for step in (6, 9):
        shutil.rmtree(_step(workdir, step))
    name = _garbage(_largest(_step(workdir, 12) / "params")).relative_to(_step(workdir, 12)).as_posix()
    with pytest.raises(SystemExit) as e:
        main(["eval", *FLAGS, "--workdir", str(workdir)])
    assert e.value.code == (f"modzoo eval: no usable checkpoint in {workdir / 'checkpoints'}: checkpoint 12 is "
                            f"corrupt ({name} sha256 mismatch); move that folder aside and train again")
    assert _entries(workdir) == ["12"]  # read-only: not moved aside


def test_restoring_params_skips_a_corrupt_latest_checkpoint_and_leaves_it_in_place(trained, workdir, capsys):
    source, _, targets = trained
    name = _garbage(_largest(_step(workdir, 12) / "params")).relative_to(_step(workdir, 12)).as_posix()
    params = restore_params(workdir, targets["params"])
    assert _same_arrays(params, _read(source, 9, params=targets["params"])["params"])
    assert _warnings(capsys.readouterr().err) == [
        f"modzoo: checkpoint 12 is corrupt ({name} sha256 mismatch); restoring checkpoint 9"]
    assert _entries(workdir) == ["12", "6", "9"]
