"""A real multi-process run: two processes joined by jax.distributed (4 CPU devices each) against one with 8.

The two processes find each other through a coordinator on 127.0.0.1 and
reduce over gloo, exactly as hosts of a multi-host GPU or TPU job do. They
train the quick Shakespeare config through the CLI while this process trains
it on its 8 devices; then the per-step losses, the per-host data, and the
2-process checkpoint restored here are compared against that reference.
"""
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import data
from zoo.cli import load_config
from zoo.train import Run, evaluate, train
from zoo.train.checkpoint import Checkpointer, abstract_like
from zoo.train.loop import datasets, model_config
from zoo.train.mesh import CLUSTER_MARKERS, ROLE_VARIABLES, maybe_initialize_distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sampling and the norm diagnostic cost compilation in every process and are not what is compared here
ARGV = ["--config", "configs/gpt_shakespeare.py:test", "--config.train.sample_tokens=0",
        "--config.train.norm_every=0"]
TIMEOUT = 420  # seconds for the whole 2-process run, with room for a busy machine

# Each process joins the job (with no CPU collectives chosen beforehand), records its first training batches and
# the iterator's state after them, then runs `modzoo train`.
DRIVER = """
import sys
import jax
import numpy as np
from zoo.train.mesh import maybe_initialize_distributed
jax.config.update("jax_cpu_collectives_implementation", None)  # none chosen: the run must choose gloo itself
assert maybe_initialize_distributed(), "the environment did not describe a multi-process job"
import data
from zoo.cli import load_config, main
from zoo.train.loop import datasets, model_config
rows_dir, argv = sys.argv[1], sys.argv[2:]
config = load_config(argv)
train_ds, _ = datasets(config, model_config(config))
it = data.make_train_iterator(train_ds, config.train.batch_size, seed=config.seed)
rows = np.stack([next(it)["tokens"] for _ in range(config.train.steps)])
np.save(f"{rows_dir}/rows{jax.process_index()}.npy", rows)
with open(f"{rows_dir}/state{jax.process_index()}.json", "wb") as f:
    f.write(data.iterator_state(it))
main(["train", *argv])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(workdir, rows_dir, logs, count=2):
    port = _free_port()
    procs = []
    for index in range(count):
        env = {k: v for k, v in os.environ.items() if "_proxy" not in k.lower()}  # gRPC must not proxy loopback
        env.update(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
                   MODZOO_COORDINATOR=f"127.0.0.1:{port}", MODZOO_NUM_PROCESSES=str(count),
                   MODZOO_PROCESS_ID=str(index), JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}")
        log = open(logs / f"process{index}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-c", DRIVER, str(rows_dir), *ARGV, "--workdir", str(workdir)],
                                      cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _wait(procs, logs):
    """Wait for every process; as soon as one fails, or time is up, kill the rest and show that log's tail."""
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 2-process run (in subprocesses) and the 8-device reference (here), trained side by side."""
    root = tmp_path_factory.mktemp("multiprocess")
    two, one = root / "two", root / "one"
    procs = _launch(two, root, root)
    try:
        config = load_config(ARGV)
        reference = train(config, one, quiet=True)
    except BaseException:
        _stop(procs)
        raise
    _wait(procs, root)
    rows = [np.load(root / f"rows{k}.npy") for k in range(2)]
    states = [(root / f"state{k}.json").read_bytes() for k in range(2)]
    return dict(config=config, two=two, one=one, reference=reference, rows=rows, states=states)


def test_two_processes_train_like_one_with_eight_devices(runs):
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
    for workdir in (runs["two"], runs["one"]):
        ckpt = Checkpointer(workdir, read_only=True)
        assert sorted(ckpt.manager.all_steps()) == [3, 6]  # one checkpoint per step, whatever the process count
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
