"""A real multi-process run: two processes joined by jax.distributed (4 CPU devices each) against one with 8.

The two processes find each other through a coordinator on 127.0.0.1 and
reduce over gloo, exactly as hosts of a multi-host GPU or TPU job do. They
train the quick Shakespeare config through the CLI while this process trains
it on its 8 devices; midway one of them gets SIGTERM, both stop after the same
step with its checkpoint, and the same command run again finishes the run.
Then the per-step losses, the per-host data, and the 2-process checkpoint
restored here are compared against the uninterrupted reference.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import multihost_utils

import data
from zoo.cli import load_config
from zoo.train import Run, evaluate, train
from zoo.train.checkpoint import Checkpointer, abstract_like
from zoo.train.loop import datasets, model_config
from zoo.train.mesh import CLUSTER_MARKERS, ROLE_VARIABLES, make_mesh, maybe_initialize_distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sampling and the norm diagnostic cost compilation in every process and are not what is compared here; with no
# periodic checkpoints, the 2-process run's first one is the one its preemption writes
ARGV = ["--config", "configs/gpt_shakespeare.py:test", "--config.train.sample_tokens=0",
        "--config.train.norm_every=0", "--config.train.checkpoint_every=0"]
TIMEOUT = 420  # seconds for each launch of the 2-process run, with room for a busy machine
DELAY = 1.0  # seconds added to each step of the launch that is preempted, so the signal lands mid-run

# Each process joins the job (with no CPU collectives chosen beforehand), records its first training batches and
# the iterator's state after them, then runs `modzoo train`, each metrics row (one per step) DELAY s late.
DRIVER = """
import sys
import time
import jax
import numpy as np
from zoo.train.mesh import maybe_initialize_distributed
jax.config.update("jax_cpu_collectives_implementation", None)  # none chosen: the run must choose gloo itself
assert maybe_initialize_distributed(), "the environment did not describe a multi-process job"
import data
from zoo.cli import load_config, main
from zoo.train.loop import datasets, model_config
rows_dir, delay, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
config = load_config(argv)
train_ds, _ = datasets(config, model_config(config))
it = data.make_train_iterator(train_ds, config.train.batch_size, seed=config.seed)
rows = np.stack([next(it)["tokens"] for _ in range(config.train.steps)])
np.save(f"{rows_dir}/rows{jax.process_index()}.npy", rows)
with open(f"{rows_dir}/state{jax.process_index()}.json", "wb") as f:
    f.write(data.iterator_state(it))
from zoo.train import metrics
write = metrics.MetricWriter.write
metrics.MetricWriter.write = lambda *a: (time.sleep(delay), write(*a))[1]
main(["train", *argv])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, rows_dir, logs, delay=0.0, count=2):
    port = _free_port()
    procs = []
    for index in range(count):
        env = {k: v for k, v in os.environ.items() if "_proxy" not in k.lower()}  # gRPC must not proxy loopback
        # the suite's XLA flags (conftest.py) with 4 devices for each process
        flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "--xla_force_host_platform_device_count=4",
                       os.environ["XLA_FLAGS"])
        env.update(XLA_FLAGS=flags, JAX_PLATFORMS="cpu",
                   MODZOO_COORDINATOR=f"127.0.0.1:{port}", MODZOO_NUM_PROCESSES=str(count),
                   MODZOO_PROCESS_ID=str(index), JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}")
        log = open(logs / f"process{index}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-c", DRIVER, str(rows_dir), str(delay), *ARGV,
                                       "--workdir", str(workdir)],
                                      cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _wait(procs, logs, expect=0):
    """Wait for every process to exit with ``expect``; as soon as one exits otherwise, or time is up, kill the rest
    and show that log's tail."""
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, expect)]
            if failed:
                pytest.fail(f"process {failed[0]} exited with {codes[failed[0]]}:\n"
                            + (logs / f"process{failed[0]}.log").read_text()[-3000:])
            if None not in codes:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the 2-process run took over {TIMEOUT} s:\n" + (logs / "process0.log").read_text()[-3000:])
            time.sleep(0.2)
    finally:
        _stop(procs)


def _signal_midway(procs, workdir):
    """SIGTERM to process 1 once process 0 has logged step 2 (unless they end before; then _stopped_step says so)."""
    deadline = time.monotonic() + TIMEOUT
    metrics = workdir / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            return
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)


def _stopped_step(procs, logs):
    """Wait for both processes to exit 75 with the same one-line message; return the step it names."""
    _wait(procs, logs, expect=75)
    said = [[x for x in (logs / f"process{k}.log").read_text().splitlines() if x.startswith("modzoo train:")]
            for k in range(2)]
    assert said[0] == said[1] and len(said[0]) == 1, said
    stopped = int(said[0][0].split("checkpoint of step ")[1].split(";")[0])
    assert said[0][0] == (f"modzoo train: stopped by SIGTERM or SIGINT to one of the 2 processes after saving the "
                          f"checkpoint of step {stopped}; run the same command again to resume")
    return stopped


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 2-process run (in subprocesses: preempted by a thread here, then the same command again) and the
    8-device reference (here, uninterrupted, meanwhile)."""
    root = tmp_path_factory.mktemp("multiprocess")
    two, one, first, second = root / "two", root / "one", root / "first", root / "second"
    first.mkdir()
    second.mkdir()
    procs = _launch(two, root, first, delay=DELAY)
    signaller = threading.Thread(target=_signal_midway, args=(procs, two))  # reads files and signals, no JAX
    signaller.start()
    try:
        config = load_config(ARGV)
        reference = train(config, one, quiet=True)
    except BaseException:
        _stop(procs)
        raise
    finally:
        signaller.join()
    stopped = _stopped_step(procs, first)
    ckpt = Checkpointer(two, read_only=True)
    saved = sorted(ckpt.manager.all_steps())
    ckpt.close()
    _wait(_launch(two, root, second), second)  # the same command again
    rows = [np.load(root / f"rows{k}.npy") for k in range(2)]
    states = [(root / f"state{k}.json").read_bytes() for k in range(2)]
    return dict(config=config, two=two, one=one, reference=reference, rows=rows, states=states, stopped=stopped,
                saved=saved, resumed=(second / "process0.log").read_text())


def test_sigterm_to_one_process_stops_both_after_the_same_step_with_its_checkpoint(runs):
    stopped, steps = runs["stopped"], runs["config"].train.steps
    assert 3 <= stopped < steps  # one past the furthest process when the notice came (step 2 or later)
    assert runs["saved"] == [stopped]  # written and committed before both exited 75
    assert f"steps {stopped}..{steps}" in runs["resumed"]  # the same command resumed there


def test_two_processes_train_like_one_with_eight_devices(runs):
    """Steps up to the preemption come from the first launch, the rest from the resumed one."""
    reference = runs["reference"]
    lines = [json.loads(line) for line in (runs["two"] / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if r["split"] == "train"]
    assert [r["step"] for r in lines if r["split"] == "train"] == list(range(1, 7))  # one row per step, process 0's
    np.testing.assert_allclose(losses, reference["train_losses"], rtol=0, atol=1e-5)
    assert losses[0] != losses[-1]  # it trained
    (two_eval,) = [r["loss"] for r in lines if r["split"] == "eval"]
    assert abs(two_eval - reference["eval"]["loss"]) < 1e-5


def test_the_two_process_checkpoint_restores_on_one_process(runs):
    config = runs["config"]
    run = Run(config)  # this process alone, 8 devices
    target = dict(params=abstract_like(run.params, run.param_shardings),
                  opt_state=abstract_like(run.opt_state, run.opt_shardings))
    restored = []
    for workdir, steps in ((runs["two"], [runs["stopped"], 6]), (runs["one"], [6])):
        ckpt = Checkpointer(workdir, read_only=True)
        assert sorted(ckpt.manager.all_steps()) == steps  # one checkpoint per step, whatever the process count
        restored.append(ckpt.restore(6, **target))  # verified against its manifest, then read
        ckpt.close()
    two, one = restored
    assert two["data"] == one["data"] and two["meta"]["step"] == 6
    pairs = zip(jax.tree.leaves((two["params"], two["opt_state"])), jax.tree.leaves((one["params"], one["opt_state"])))
    for a, b in pairs:
        assert a.shape == b.shape and a.sharding == b.sharding
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    metrics = evaluate(config, str(runs["two"]))
    assert abs(metrics["loss"] - runs["reference"]["eval"]["loss"]) < 1e-5


def test_each_process_reads_its_own_half_of_every_global_batch(runs):
    config = runs["config"]
    host0, host1 = runs["rows"]
    assert host0.shape == host1.shape == (6, 4, 17)  # 6 steps, 8 / 2 rows, context 16 + 1
    train_ds, _ = datasets(config, model_config(config))
    it = data.make_train_iterator(train_ds, 8, seed=config.seed, process_index=0, process_count=1)
    single = np.stack([next(it)["tokens"] for _ in range(6)])
    key = lambda rows: sorted(r.tobytes() for r in rows)  # noqa: E731
    assert len(set(key(single.reshape(-1, 17)))) == 48  # the reference reads 48 distinct windows...
    for step in range(6):  # ...and at every step the two hosts split its batch between them
        assert key(np.concatenate([host0[step], host1[step]])) == key(single[step])
    assert not set(key(host0.reshape(-1, 17))) & set(key(host1.reshape(-1, 17)))
    assert runs["states"] == [data.iterator_state(it)] * 2  # both hosts stand where the one host does


def test_a_partial_or_invalid_process_description_is_one_clear_error(monkeypatch):
    for name in CLUSTER_MARKERS + ROLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert maybe_initialize_distributed() is False  # a single process: nothing to join
    monkeypatch.setenv("MODZOO_COORDINATOR", "127.0.0.1:1234")
    with pytest.raises(ValueError, match="MODZOO_NUM_PROCESSES, MODZOO_PROCESS_ID not set"):
        maybe_initialize_distributed()
    monkeypatch.setenv("MODZOO_NUM_PROCESSES", "2")
    monkeypatch.setenv("MODZOO_PROCESS_ID", "2")
    with pytest.raises(ValueError, match=r"MODZOO_PROCESS_ID=2 is outside \[0, MODZOO_NUM_PROCESSES=2\)"):
        maybe_initialize_distributed()
    monkeypatch.setenv("MODZOO_PROCESS_ID", "one")
    with pytest.raises(ValueError, match="must be integers"):
        maybe_initialize_distributed()
    assert not jax.distributed.is_initialized()


def test_orbax_leaves_the_preemption_sync_count_to_the_run_loop(tmp_path, monkeypatch):
    """Orbax's own calls (at save, and later from its finalize thread, with the saved step) would set back the
    count the processes compare when they agree on a step."""
    calls = []
    monkeypatch.setattr(multihost_utils, "reached_preemption_sync_point", lambda step: calls.append(step) or False)
    ckpt = Checkpointer(tmp_path)
    tree = {"w": jnp.ones(3)}
    ckpt.save(5, params=tree, opt_state=tree, data_state={}, meta={})
    ckpt.close()
    assert sorted(ckpt.manager.all_steps()) == [5] and calls == []


class _Device:
    """What make_mesh reads of a device before it builds a mesh."""

    def __init__(self, process_index):
        self.process_index = process_index


def test_a_mesh_leaving_out_devices_of_a_multi_process_run_is_refused_in_one_line():
    devices = [_Device(k) for k in range(2) for _ in range(4)]  # 2 processes x 4 devices, process 0's first
    with pytest.raises(ValueError) as e:
        make_mesh({"data": 4}, devices)  # the first 4: process 0's alone
    assert str(e.value) == ("mesh {'data': 4, 'fsdp': 1, 'tensor': 1} uses 4 of the 8 devices of 2 processes; a "
                            "multi-process mesh takes every device: set one axis to -1, e.g. mesh.data=-1")
    with pytest.raises(ValueError, match=r"uses 6 of the 8 devices .* e\.g\. mesh\.tensor=-1$"):
        make_mesh({"data": 2, "tensor": 3}, devices)  # data=-1 would not fit 8; tensor=-1 makes it 2 x 4
    mesh = make_mesh({"data": 2})  # one process: the first devices
    assert mesh.devices.ravel().tolist() == jax.devices()[:2]
