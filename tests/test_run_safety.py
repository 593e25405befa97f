"""Run safety: one run per workdir, preemption by signal, metrics without duplicates, bad settings, divergence."""

import fcntl
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import time

import data
import jax
import numpy as np
import pytest
from tensorboardX import SummaryWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog

import zoo.train.loop as loop
from configs import gpt_shakespeare
from zoo.cli import main
from zoo.exits import PREEMPTED_EXIT
from zoo.train import ConfigError, Diverged, Preempted, WorkdirLocked, train
from zoo.train.loop import Run, _nonfinite, datasets
from zoo.train.preemption import preemption_requests
from zoo.train.workdir_lock import workdir_lock

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/gpt_shakespeare.py:test,optim=adamw"
STEPS = 40  # every run here has this many steps and AdamW (the quickest to compile), so they share compilations


def _gpt(**train_fields):
    c = gpt_shakespeare.get_config("test,optim=adamw")
    c.mesh.update({"data": 1})
    c.train.update({"norm_every": 0, "sample_tokens": 0, **train_fields})
    return c


def _rows(workdir, split="train"):
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def _checkpoints(workdir):
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


# --- one run per workdir -------------------------------------------------------------------------------------------

HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("workdir_lock", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
with module.workdir_lock(sys.argv[2]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_run_on_a_workdir_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT / "zoo/train/workdir_lock.py"), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(WorkdirLocked, match=rf"is in use by process {holder.pid} on "):
            train(_gpt(steps=STEPS), tmp_path, quiet=True)
        with pytest.raises(SystemExit) as e:
            main(["train", "--config", CONFIG, "--workdir", str(tmp_path)])
        assert str(e.value.code) == (f"modzoo train: {tmp_path} is in use by process {holder.pid} on "
                                     f"{os.uname().nodename}; wait for that run to end or use another --workdir")
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing else written
    finally:
        holder.kill()  # SIGKILL: no chance to clean up; the kernel drops the lock
        holder.wait()
    with workdir_lock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()} {os.uname().nodename}\n"


def test_a_run_on_a_new_workdir_is_refused_before_it_builds_anything(tmp_path, monkeypatch):
    workdir = tmp_path / "runs" / "new"  # neither folder exists: the holder creates both for its lock
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT / "zoo/train/workdir_lock.py"), str(workdir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"

        def build(*args, **kwargs):
            raise AssertionError("the model was built before the run was refused")

        monkeypatch.setattr(loop, "Run", build)
        with pytest.raises(WorkdirLocked, match=rf"is in use by process {holder.pid} on "):
            train(_gpt(steps=STEPS), workdir, quiet=True)
    finally:
        holder.kill()
        holder.wait()


def test_a_refused_config_leaves_no_workdir_and_a_lock_file_removed_meanwhile_is_not_held(tmp_path, monkeypatch):
    """A refused run removes the lock file and folders it created; another run that opened the file before
    that locks it after, finds it gone, and locks the file at the path instead."""
    config = _gpt(steps=STEPS)
    config.model.heads = 5
    with pytest.raises(ValueError, match="gpt width 32 is not divisible by heads 5"):
        train(config, tmp_path / "a" / "b" / "run", quiet=True)
    assert list(tmp_path.iterdir()) == []

    workdir = tmp_path / "run"
    refused = workdir_lock(workdir)
    refused.__enter__()
    real_flock, events = fcntl.flock, []

    def flock(fd, operation):  # the second run's attempt waits until the first has been refused and cleaned up
        if operation & fcntl.LOCK_EX and not events:
            events.append("refused")
            refused.__exit__(ValueError, ValueError("refused"), None)
            assert not workdir.exists()
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with workdir_lock(workdir):
        monkeypatch.setattr(fcntl, "flock", real_flock)
        assert events == ["refused"]
        assert (workdir / ".lock").read_text() == f"{os.getpid()} {os.uname().nodename}\n"
        with pytest.raises(WorkdirLocked):  # the file at the path is the one held
            with workdir_lock(workdir):
                pass


# --- bad settings ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,least,example", [
    ("steps", -5, 1, 1000), ("keep", 0, 1, 2), ("batch_size", 0, 1, 32), ("log_every", 0, 1, 25),
    ("skip_nonfinite", -1, 0, 3), ("eval_batches", -2, 0, 20),
])
def test_bad_train_settings_are_one_line_before_the_workdir_exists(tmp_path, field, value, least, example):
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", CONFIG, "--workdir", str(workdir), f"--config.train.{field}={value}"])
    assert str(e.value.code) == (f"modzoo train: train.{field} must be a whole number in {least}..2147483647, got {value}; "
                                 f"e.g. --config.train.{field}={example}")
    assert not workdir.exists()
    with pytest.raises(ConfigError):  # the function refuses the same way
        train(_gpt(**{field: value}), workdir, quiet=True)
    assert not workdir.exists()


# --- preemption ----------------------------------------------------------------------------------------------------

# `python -m zoo.cli` with each metrics row 50 ms slower, as a bigger model's steps would be, so the signal
# surely lands mid-run.
SLOW_CLI = """
import sys, time
from zoo.train import metrics
write = metrics.MetricWriter.write
metrics.MetricWriter.write = lambda *a: (time.sleep(0.05), write(*a))[1]
from zoo.cli import main
main(sys.argv[1:])
"""


def test_sigterm_through_the_cli_checkpoints_exits_75_and_the_restart_loses_no_step(tmp_path):
    workdir = tmp_path / "run"
    argv = ["train", "--config", CONFIG, "--workdir", str(workdir), "--config.mesh.data=1",
            f"--config.train.steps={STEPS}", "--config.train.checkpoint_every=0", "--config.train.norm_every=0",
            "--config.train.sample_tokens=0"]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 300
        while not ((workdir / "metrics.jsonl").exists() and len(_rows(workdir)) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        # the uninterrupted reference, meanwhile (trained before the signal, it gave the run time to finish)
        reference = train(_gpt(steps=STEPS, checkpoint_every=0), tmp_path / "reference", quiet=True)["train_losses"]
        stderr = proc.communicate(timeout=300)[1]
    finally:
        proc.kill()
    assert proc.returncode == PREEMPTED_EXIT, stderr[-3000:]
    [stopped] = _checkpoints(workdir)
    assert 3 <= stopped < STEPS
    assert stderr.rstrip().splitlines()[-1] == (f"modzoo train: stopped by SIGTERM after saving the checkpoint of "
                                                f"step {stopped}; run the same command again to resume")
    main(argv)  # the same command again
    rows = _rows(workdir)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in rows] == reference  # bit-identical on CPU


def _events(tensorboard_dir):
    """What TensorBoard shows: scalar values per (tag, step), reading event files in order and dropping
    earlier events at or after the step of each SessionLog START (its purge rule)."""
    seen = []
    for path in sorted(tensorboard_dir.iterdir()):
        raw = path.read_bytes()
        i = 0
        while i < len(raw):
            (n,) = struct.unpack("<Q", raw[i:i + 8])
            event = Event.FromString(raw[i + 12:i + 12 + n])
            i += 12 + n + 4
            if event.session_log.status == SessionLog.START:
                seen = [e for e in seen if e[1] < event.step]
            seen += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return seen


def test_sigint_stops_after_the_step_and_a_resume_keeps_one_metrics_row_per_step(tmp_path):
    config = _gpt(steps=STEPS, checkpoint_every=0, eval_every=0)
    reference = train(config, tmp_path / "reference", quiet=True)
    workdir = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)

    def interrupt(step, loss):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Preempted, match="stopped by SIGINT after saving the checkpoint of step 2"):
        train(config, workdir, quiet=True, on_log=interrupt)
    assert _checkpoints(workdir) == [2]
    assert signal.getsignal(signal.SIGINT) is before
    # What a run killed after step 2's checkpoint would have left: rows of steps 3 and 4, a torn last line,
    # and TensorBoard events of those steps.
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "split": "train", "loss": 9.0}\n{"step": 4, "split": "eval", "loss": 9.0}\n')
        f.write('{"step": 4, "sp')
    late = SummaryWriter(str(workdir / "tensorboard"), filename_suffix=f".{time.time_ns()}")  # named as modzoo does
    for step in (3, 4):
        late.add_scalar("train/loss", 9.0, step)
    late.close()

    resumed = train(config, workdir, quiet=True)
    assert resumed["train_losses"] == reference["train_losses"][2:]
    assert [r["step"] for r in _rows(workdir)] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in _rows(workdir)] == reference["train_losses"]
    assert [r["step"] for r in _rows(workdir, "eval")] == [STEPS]
    shown = [(tag, step) for tag, step, _ in _events(workdir / "tensorboard") if tag == "train/loss"]
    assert shown == [("train/loss", s) for s in range(1, STEPS + 1)]

    # The same command on a finished run evaluates again and replaces, not repeats, the final evaluation.
    train(config, workdir, quiet=True)
    assert [r["step"] for r in _rows(workdir, "eval")] == [STEPS] and len(_rows(workdir)) == STEPS
    with workdir_lock(workdir):  # released after every call
        pass


@pytest.fixture
def default_sigint():
    """SIGINT as Python sets it up in a foreground process (KeyboardInterrupt): a process started in the
    background by a shell inherits SIGINT ignored, and then a second Ctrl-C has nothing to abort with."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_second_sigint_aborts_at_once(tmp_path, default_sigint):
    before = signal.getsignal(signal.SIGINT)

    def interrupt_twice(step, loss):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(_gpt(steps=STEPS, checkpoint_every=0), tmp_path, quiet=True, on_log=interrupt_twice)
    assert _checkpoints(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is before
    with workdir_lock(tmp_path):
        pass


def test_in_a_multi_process_run_sigint_goes_to_the_preemption_notifier_and_sigterm_is_left_to_it(monkeypatch,
                                                                                                 default_sigint):
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    notices = []

    def notifier(signum, frame):  # stands in for the SIGTERM handler jax.distributed.initialize installs
        notices.append(signum)

    previous = signal.signal(signal.SIGTERM, notifier)
    before = signal.getsignal(signal.SIGINT)
    try:
        with preemption_requests() as requests:
            assert signal.getsignal(signal.SIGTERM) is notifier
            os.kill(os.getpid(), signal.SIGINT)
            assert requests.signum == signal.SIGINT and notices == [signal.SIGTERM]  # handed on as a SIGTERM
            assert not requests.stop_now()  # processes stop only at the step they agree on
            os.kill(os.getpid(), signal.SIGTERM)
            assert notices == [signal.SIGTERM] * 2  # SIGTERM still reaches the notifier itself
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C does not wait
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_run_inside_a_sweep_shares_its_requests_and_a_stop_asked_without_a_signal_is_not_a_first_signal(
        default_sigint):
    """A sweep's worker holds the requests its runs share; told to stop by its coordinator, a signal that also
    reaches it directly (a whole job killed at once) is still the first, and only the next one aborts."""
    before = signal.getsignal(signal.SIGINT)
    with preemption_requests() as sweep_requests:
        with preemption_requests() as run_requests:
            assert run_requests is sweep_requests and signal.getsignal(signal.SIGINT) is not before
            run_requests.request(signal.SIGTERM)  # the coordinator's "stop 15"
            os.kill(os.getpid(), signal.SIGINT)
            assert run_requests.signum == signal.SIGTERM  # the first request stays
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


# --- divergence ------------------------------------------------------------------------------------------------------

def _by_hand(config, steps):
    """An independent look: the compiled step run by hand, every float of the new state checked on the host.

    Returns (loss, gradient norm, whether the step left everything finite) per step.
    """
    run = Run(config)
    iterator = data.make_train_iterator(datasets(config, run.model_cfg)[0], config.train.batch_size, seed=config.seed)
    out = []
    for _ in range(steps):
        run.params, run.opt_state, metrics = run.step_fn(run.params, run.opt_state, run.global_batch(next(iterator)))
        leaves = jax.tree.leaves((run.params, run.opt_state, metrics["loss"], metrics["grad_norm"]))
        finite = all(np.isfinite(np.asarray(x)).all() for x in leaves if np.issubdtype(x.dtype, np.inexact))
        out.append((float(metrics["loss"]), float(metrics["grad_norm"]), finite))
    return out


def _huge_rate(**train_fields):
    config = _gpt(steps=STEPS, eval_every=0, **train_fields)
    config.optim.learning_rate = 1e38  # step 1 lands on weights of order 1e38, the next update overflows
    return config


def test_divergence_at_an_unlogged_step_stops_the_run_before_anything_after_it_is_saved(tmp_path):
    config = _huge_rate(log_every=100, checkpoint_every=1)
    by_hand = _by_hand(config, 8)
    first_bad = 1 + [finite for _, _, finite in by_hand].index(False)
    assert 1 < first_bad < 8  # not step 1 (always logged)
    assert np.isfinite(by_hand[first_bad - 1][0]) and np.isnan(by_hand[first_bad - 1][1])  # finite loss, NaN gradient
    with pytest.raises(Diverged) as e:
        train(config, tmp_path / "saved", quiet=True)
    assert (e.value.step, e.value.last_good) == (first_bad, first_bad - 1)
    assert str(e.value).startswith(f"the gradient norm is nan at step {first_bad}; stopped, "
                                   f"the last good state is the checkpoint of step {first_bad - 1}")
    assert _checkpoints(tmp_path / "saved") == [first_bad - 1]
    config.train.checkpoint_every = 0  # nothing reads that step's flag at once: the next step's dispatch does
    with pytest.raises(Diverged, match=f"at step {first_bad}; stopped, nothing was saved"):
        train(config, tmp_path / "unsaved", quiet=True)
    rows = _rows(tmp_path / "unsaved")
    assert [r["step"] for r in rows] == [1, first_bad]  # step 1, and the diverged step's row: loss, NaN norm (null)
    assert rows[-1]["loss"] == by_hand[first_bad - 1][0] and rows[-1]["grad_norm"] is None


def test_skip_nonfinite_leaves_the_state_alone_counts_skips_and_stops_after_n(tmp_path):
    by_hand = _by_hand(_huge_rate(), 3)
    assert [finite for _, _, finite in by_hand] == [True, False, False]
    with pytest.raises(Diverged) as e:
        train(_huge_rate(log_every=1, checkpoint_every=1, skip_nonfinite=2), tmp_path, quiet=True)
    assert (e.value.step, e.value.last_good) == (4, 3)
    assert str(e.value).startswith("the gradient norm is nan (2 non-finite steps skipped "
                                   "already, train.skip_nonfinite=2) at step 4")
    rows = _rows(tmp_path)
    assert [(r["step"], r["skipped"]) for r in rows] == [(1, 0), (2, 1), (3, 2), (4, 2)]
    # Step 2 saw the weights after step 1, as without skipping; step 3 saw them too (finite), where the applied
    # update of step 2 gives NaN.
    assert rows[1]["loss"] == by_hand[1][0]
    assert np.isfinite(rows[2]["loss"]) and not np.isfinite(by_hand[2][0])
    # The optimizer's count did not advance on skipped steps, and the logged rate is the one it applied.
    assert rows[2]["learning_rate"] == rows[1]["learning_rate"] == rows[0]["learning_rate"] == 1e38
    assert _checkpoints(tmp_path) == [2, 3]


def test_the_divergence_message_names_what_was_not_finite():
    nan, inf = float("nan"), float("inf")
    assert _nonfinite({"loss": nan, "grad_norm": nan}) == "loss is nan"
    assert _nonfinite({"loss": 2.0, "grad_norm": inf}) == "the gradient norm is inf"
    assert _nonfinite({"loss": 2.0, "grad_norm": 1.0}) == "the weights or optimizer state are not finite"
