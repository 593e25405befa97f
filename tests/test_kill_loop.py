"""Kill loop: a `modzoo train` run killed with SIGKILL again and again ends exactly where an uninterrupted one does.

The same command is started, killed at a seeded random point, and started
again, five times (once while Orbax writes a checkpoint asynchronously, once
during the final evaluation, three times at random instants or steps, which
may fall before the first checkpoint; an aimed kill that a busy machine
delays past its target counts as a random one and is tried again), then left
to finish. Its metrics (every row but the wall-clock rate), final evaluation
and sample must equal those of the same command run once without a kill,
bit for bit (CPU, one device for both), with one row per step.

Speed: every process pays the jax import and model setup, so the command
uses JAX's persistent compilation cache (a folder of this test): the
uninterrupted run, first, compiles and fills it; the restarts load from it.
"""

import functools
import json
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS, CHECKPOINT_EVERY, EVAL_EVERY = 12, 3, 5
ARGV = ["train", "--config", "configs/gpt_shakespeare.py:test", f"--config.train.steps={STEPS}",
        f"--config.train.checkpoint_every={CHECKPOINT_EVERY}", f"--config.train.eval_every={EVAL_EVERY}",
        "--config.train.sample_tokens=4"]
TMP = ".orbax-checkpoint-tmp"  # Orbax writes a checkpoint under <step>.orbax-checkpoint-tmp, then renames it

# `modzoo train` as `python -m zoo.cli train` runs it, with one test hook: every evaluation, as it starts, appends
# "evaluation after step N" (N: the last train row in metrics.jsonl) to the file $KILL_LOOP_EVALS, and takes 20 ms
# more per batch (0.3 s in all), so a kill can be aimed into it. The batches and the numbers are the package's own.
DRIVER = """
import json, os, pathlib, sys, time
import data
from zoo.cli import main

metrics = pathlib.Path(sys.argv[sys.argv.index("--workdir") + 1]) / "metrics.jsonl"
batches = data.make_eval_batches

def announced(*args, **kwargs):
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    step = max(r["step"] for r in rows if r["split"] == "train")
    with open(os.environ["KILL_LOOP_EVALS"], "a") as f:
        f.write(f"evaluation after step {step}\\n")
    for batch in batches(*args, **kwargs):
        time.sleep(0.02)
        yield batch

data.make_eval_batches = announced
main(sys.argv[1:])
"""


def _environment(tmp_path):
    return dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
                XLA_FLAGS=re.sub(r"--xla_force_host_platform_device_count=\d+",  # the suite's flags, one device
                                 "--xla_force_host_platform_device_count=1", os.environ["XLA_FLAGS"]),
                JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", KILL_LOOP_EVALS=str(tmp_path / "evaluations"))


class Life:
    """One process of the command and what the test can see of it from outside."""

    def __init__(self, workdir, env, log):
        self.workdir, self.env = workdir, env
        self.metrics = workdir / "metrics.jsonl"
        self.stale = self._inode()  # a resumed run rewrites metrics.jsonl (a new file) before its first step
        self.left_over = set(self._writing())  # what a process killed earlier left half-written
        self.evaluations = self._evaluations()
        self.started = time.monotonic()
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, *ARGV, "--workdir", str(workdir)], cwd=ROOT,
                                     env=env, stdout=log, stderr=subprocess.STDOUT)

    def _inode(self):
        try:
            return self.metrics.stat().st_ino
        except FileNotFoundError:
            return None

    def _evaluations(self):
        path = pathlib.Path(self.env["KILL_LOOP_EVALS"])
        return path.read_text().splitlines() if path.exists() else []

    def rows(self):
        """This process's metrics rows (none until it has rewritten the file); a torn last line is left out."""
        if self._inode() in (None, self.stale):
            return []
        out = []
        for line in self.metrics.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def last_train_step(self):
        return max((r["step"] for r in self.rows() if r["split"] == "train"), default=0)

    def _writing(self):
        folder = self.workdir / "checkpoints"
        try:
            return [(p.name, p.stat().st_ino) for p in folder.iterdir() if TMP in p.name]
        except FileNotFoundError:  # no folder yet, or Orbax renamed the one being looked at
            return []

    def writing(self):
        """The checkpoint folders this process has started and Orbax has not finished writing."""
        return sorted(name for name, inode in set(self._writing()) - self.left_over)

    def evaluating_after(self, step):
        """Whether this process has started an evaluation after the train row of ``step``."""
        return f"evaluation after step {step}" in self._evaluations()[len(self.evaluations):]

    def wait_for(self, condition, what):
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended (exit {self.proc.returncode}) before {what}:\n{self.output()}")
            assert time.monotonic() - self.started < 120, f"no {what} within 120 s:\n{self.output()}"
            time.sleep(0.002)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait() in (-signal.SIGKILL, 0), self.output()  # 0: it had just finished

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:  # a failed check left it running
            self.proc.kill()
            self.proc.wait()

    def output(self):
        self.log.flush()
        return pathlib.Path(self.log.name).read_text()[-3000:]


# Each way to kill returns where it struck and whether that is where it aimed (a machine busy enough to delay
# the kill past a checkpoint write or the final evaluation makes it a random kill; the loop then aims again).

def _kill_at_random_time(life, rng):
    delay = rng.uniform(0.5, 5.0)  # import, setup, compilation or the first steps: may be before any checkpoint
    life.wait_for(lambda: time.monotonic() - life.started >= delay, f"{delay:.2f} s")
    life.kill()
    return f"{delay:.2f} s after the start", True


def _kill_after_step(life, rng, least):
    step, delay = rng.randint(least, STEPS), rng.uniform(0.0, 0.05)
    life.wait_for(lambda: life.last_train_step() >= step, f"step {step}")
    time.sleep(delay)
    life.kill()
    return f"{delay * 1e3:.0f} ms after step {step}'s metrics row", True


def _kill_while_a_checkpoint_is_written(life, rng):
    delay = rng.uniform(0.0, 0.03)  # Orbax's temporary folder lives about 0.2 s for this model
    seen = []
    life.wait_for(lambda: seen.extend(life.writing()) or seen, "a checkpoint write")
    started = seen[0]
    time.sleep(delay)
    life.kill()
    return f"{delay * 1e3:.0f} ms into the write of {started}", started in life.writing()


def _kill_during_the_final_evaluation(life, rng):
    delay = rng.uniform(0.0, 0.1)  # the evaluation takes 0.3 s and more (DRIVER)
    life.wait_for(lambda: life.evaluating_after(STEPS), "the final evaluation")
    time.sleep(delay)
    life.kill()
    done = [r for r in life.rows() if r["split"] == "eval" and r["step"] == STEPS]
    return f"{delay * 1e3:.0f} ms into the final evaluation", not done


def _run_to_the_end(workdir, env, log):
    with Life(workdir, env, log) as life:
        assert life.proc.wait(timeout=300) == 0, life.output()
    lines = pathlib.Path(log.name).read_text().splitlines()
    final = next(json.loads(line) for line in reversed(lines) if line.startswith('{"step": '))
    final.pop("seconds")  # wall clock
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("tokens_per_s", None)  # wall-clock throughput: the one value that may differ
    return final, rows, (workdir / "sample.txt").read_bytes()


def test_a_run_killed_five_times_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    env = _environment(tmp_path)
    t = time.monotonic()
    with open(tmp_path / "reference.log", "w") as log:
        reference = _run_to_the_end(tmp_path / "reference", env, log)
    print(f"\nuninterrupted run: {time.monotonic() - t:.1f} s")
    final, rows, sample = reference
    assert final["step"] == STEPS and set(final["eval"]) == {"loss", "nats_per_byte"}
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, STEPS + 1))
    assert [r["step"] for r in rows if r["split"] == "eval"] == [5, 10, STEPS]

    rng = random.Random(11)
    workdir, hit, missed = tmp_path / "killed", [], []
    plan = [_kill_at_random_time, _kill_while_a_checkpoint_is_written, functools.partial(_kill_after_step, least=1),
            functools.partial(_kill_after_step, least=STEPS // 2), _kill_during_the_final_evaluation]
    while plan:
        kill = plan.pop(0)
        with open(tmp_path / f"life{len(hit) + len(missed)}.log", "w") as log, Life(workdir, env, log) as life:
            where, aimed = kill(life, rng)
        checkpoints = sorted(p.name for p in (workdir / "checkpoints").iterdir()) \
            if (workdir / "checkpoints").is_dir() else []
        what = f"{where} ({time.monotonic() - life.started:.1f} s): last logged step {life.last_train_step()}, " \
               f"checkpoints {checkpoints}"
        if not aimed:
            missed.append(what)
            assert len(missed) <= 4, "\n".join(["too many kills missed their aim:", *missed])
            plan.insert(0, kill)
            continue
        hit.append(what)
    print("\n".join(["kill points:", *hit, "missed (random kills):", *missed]))
    t = time.monotonic()
    with open(tmp_path / "last.log", "w") as log:
        assert _run_to_the_end(workdir, env, log) == reference  # losses, every metrics row, final eval, sample
    print(f"last restart: {time.monotonic() - t:.1f} s")
