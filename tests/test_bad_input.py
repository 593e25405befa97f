"""Bad input through ``modzoo``: one line naming the problem and the fix, a nonzero exit, no traceback, and the
workdir neither created nor changed (issue 11's table, walked in-process through ``zoo.cli.main``).

One tiny AdamW run is trained for a step once; rows about an existing run refuse a copy of it.
"""

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import gpt_shakespeare
from zoo.cli import main
from zoo.train import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/gpt_shakespeare.py:test,optim=adamw"
TRAIN = ["train", "--config", CONFIG]
TINYSTORIES = "configs/gpt_tinystories.py:test,optim=adamw"
SWEEP = "configs/sweeps/gpt_width.py:test"
SIZE = "gpt {field} must be a whole number in 1..2147483647, got {value}; e.g. {field}={example}"
EXAMPLE = {"width": 128, "depth": 4, "heads": 4, "context": 256}  # GPTConfig's defaults, the messages' examples


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The workdir of a run of the test config stopped, with its checkpoint, after step 1."""
    workdir = tmp_path_factory.mktemp("bad_input") / "trained"
    config = gpt_shakespeare.get_config("test,optim=adamw")
    config.train.norm_every = 0
    config.mesh.data = 1  # compiled on one device, quicker; the rows resume it on any mesh
    train(config, workdir, stop_at=1, quiet=True)
    return workdir


def _tree(path: pathlib.Path):
    """What is at ``path``: None, or {relative path: (size, sha256)} of every file (and "" for the path if a file)."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)) if p != path else "": (p.stat().st_size, hashlib.sha256(p.read_bytes()).digest())
            for p in files}


def _refused(capsys, argv) -> tuple[int, str]:
    """(exit status, the one line of output) of a ``modzoo`` command that must refuse its input."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    code = stop.value.code
    status = code if isinstance(code, int) else 1  # a message as the code: Python prints it and exits 1
    lines = (out + err).splitlines() + ([] if isinstance(code, int) else str(code).splitlines())
    assert status != 0 and len(lines) == 1, (code, out, err)
    assert "Traceback" not in lines[0]
    return status, lines[0]


def _read_only(path: pathlib.Path, monkeypatch, request) -> None:
    """Make the folder ``path`` read-only; where root may write it anyway, answer ``os.access`` as for anyone else."""
    os.chmod(path, 0o555)
    request.addfinalizer(lambda: os.chmod(path, 0o755))
    if os.access(path, os.W_OK):  # root: permission bits do not bind it
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: (
            not mode & os.W_OK if pathlib.Path(p).absolute() == path else real(p, mode, *a, **k)))


class _Context:
    """A row's own folder ``tmp``: ``new`` (a workdir not made yet), ``run`` (a copy of the trained run), a file,
    a short text file and an empty folder ``locked``; :meth:`train` gives a command line and the path to watch."""

    def __init__(self, tmp, trained, monkeypatch, request):
        self.tmp, self.trained, self.monkeypatch, self.request = tmp, trained, monkeypatch, request
        self.new, self.run, self.file, self.locked = tmp / "new", tmp / "run", tmp / "notes.txt", tmp / "locked"
        shutil.copytree(trained, self.run)
        self.file.write_text("not a folder\n")
        self.short = tmp / "short.txt"
        self.short.write_bytes(b"to be or not to be, " * 5)  # 100 bytes: a validation split of 10
        self.locked.mkdir()

    def train(self, *flags, config=CONFIG, workdir=None, watch=None):
        workdir = self.new if workdir is None else workdir
        return ["train", "--config", config, "--workdir", str(workdir), *flags], watch or workdir

    def data(self, tinystories: bytes | None) -> None:
        """A data folder holding ``tinystories`` as the TinyStories file (None: no file), and a fresh cache."""
        folder = self.tmp / "data"
        folder.mkdir()
        if tinystories is not None:
            (folder / "tinystories_val_subset.txt").write_bytes(tinystories)
        self.monkeypatch.setenv("MODZOO_DATA_DIR", str(folder))
        self.monkeypatch.setenv("MODZOO_CACHE_DIR", str(self.tmp / "cache"))

    def read_only(self, folder: pathlib.Path) -> None:
        _read_only(folder, self.monkeypatch, self.request)


def _sizes(field, bad):
    line = SIZE.format(field=field, value=bad, example=EXAMPLE[field])
    return f"{field}={bad}", 1, "modzoo train: " + re.escape(line), lambda c: c.train(f"--config.model.{field}={bad}")


def _other_architecture(field, value, shape):
    pattern = (r"modzoo train: checkpoint in {trained} does not match this model's architecture \(checkpoint 1's "
               rf"params has another structure \(missing \[\], unexpected \[\], shapes \[.*{re.escape(shape)}.*\]\)\); "
               "use the same model config it was trained with")
    return (f"init_from-other-{field}", 1, pattern,
            lambda c: c.train("--init_from", str(c.trained), f"--config.model.{field}={value}"))


def _tinystories(content):
    def setup(c):
        c.data(content)
        return c.train(config=TINYSTORIES)
    return setup


def _read_only_run(c):
    c.read_only(c.run)
    return c.train(workdir=c.run)


def _in_read_only_folder(c):
    c.read_only(c.locked)
    return c.train(workdir=c.locked / "run", watch=c.locked)


ROWS = [  # (id, exit status, the line (a regex; {run}, {file}, {locked}, {trained}: those paths), setup)
    ("unknown-model", 1, r"modzoo train: unknown model 'gpt-nope'; available \(closest first\): gpt-tiny, .*",
     lambda c: c.train("--config.model.name=gpt-nope")),
    ("unknown-config-field", 2, r"modzoo train: unknown field 'model.widht' in --config.model.widht; "
     r"model 'gpt-shakespeare' has: .*depth, .*width", lambda c: c.train("--config.model.widht=64")),
    ("wrong-type", 2, r"modzoo train: bad value in --config.model.width=abc: .*abc; model.width must be of type int, "
     r"e.g. --config.model.width=32",
     lambda c: c.train("--config.model.width=abc")),
    *[_sizes(field, bad) for field, bad in [("width", 0), ("width", -32), ("depth", 0), ("depth", -1), ("heads", 0),
                                            ("heads", -4), ("context", 0), ("context", -16), ("width", 2**63),
                                            ("heads", 2**63)]],
    ("heads-not-dividing-width", 1, r"modzoo train: gpt width 32 is not divisible by heads 5; pick heads that divide "
     r"the width, e.g. heads=4", lambda c: c.train("--config.model.heads=5")),
    ("context-longer-than-the-data", 1, r"modzoo train: the validation split of .*short.txt has 10 bytes, fewer than "
     r"context \+ 1 = 17: use a smaller context or a longer file", lambda c: c.train(f"--config.data.name={c.short}")),
    ("unknown-tokenizer", 1, r"modzoo train: unknown tokenizer 'bpe:100': use 'bytes' or 'bpe:N' with N >= 257 "
     r"\(e.g. bpe:512\), a pretrained model's name or a tokenizer .json file",
     lambda c: c.train("--config.data.tokenizer=bpe:100")),
    ("tokenizer-larger-than-the-vocab", 1, r"modzoo train: the tokenizer \(bpe:300\) has 300 tokens but the model's "
     r"vocab is 256: set --config.model.vocab=300", lambda c: c.train("--config.data.tokenizer=bpe:300")),
    ("missing-tokenizer-file", 1, r"modzoo train: tokenizer file nope.json does not exist: give a tokenizer.json a "
     r"run saved, 'bytes' or 'bpe:N'", lambda c: c.train("--config.data.tokenizer=nope.json")),
    ("steps=0", 1, r"modzoo train: train.steps must be a whole number in 1..2147483647, got 0; e.g. --config.train.steps=1000",
     lambda c: c.train("--config.train.steps=0")),
    ("steps=-5", 1, r"modzoo train: train.steps must be a whole number in 1..2147483647, got -5; e.g. --config.train.steps=1000",
     lambda c: c.train("--config.train.steps=-5")),
    ("steps=2**63", 1, r"modzoo train: train.steps must be a whole number in 1..2147483647, got 9223372036854775808; "
     r"e.g. --config.train.steps=1000", lambda c: c.train(f"--config.train.steps={2**63}")),
    ("learning-rate-inf", 1, r"modzoo train: learning_rate must be a finite positive number, got inf",
     lambda c: c.train("--config.optim.learning_rate=inf")),
    ("keep=0", 1, r"modzoo train: train.keep must be a whole number in 1..2147483647, got 0; e.g. --config.train.keep=2",
     lambda c: c.train("--config.train.keep=0")),
    ("unknown-optimizer", 1, r"modzoo train: unknown optimizer 'sgd' \(optim.name\); choose one of scion, .*adamw, "
     r"e.g. --config.optim.name=adamw", lambda c: c.train("--config.optim.name=sgd")),
    ("unknown-optimizer-in-the-config-arg", 2, r"modzoo train: --config configs/gpt_shakespeare.py:test,optim=sgd: "
     r"unknown optimizer 'sgd' in config arg; choose one of scion, .*",
     lambda c: c.train(config="configs/gpt_shakespeare.py:test,optim=sgd")),
    ("missing-data-file-offline", 1, r"modzoo train: tinystories_val_subset.txt not found in .*/data and it has no "
     r"download source: put tinystories_val_subset.txt in .*/data, or set \$MODZOO_DATA_DIR .*", _tinystories(None)),
    ("corrupt-data-file", 1, r"modzoo train: .*/data/tinystories_val_subset.txt is not the expected file .*: sha256 "
     r"expected 5fc1fb\w+, got \w+; replace it with an intact copy of tinystories_val_subset.txt .*",
     _tinystories(b"not the stories " * 64)),
    ("missing-config-file", 2, r"modzoo train: config file configs/nope.py not found \(from .*\); give an experiment "
     r"file, e.g. --config configs/gpt_shakespeare.py", lambda c: c.train(config="configs/nope.py")),
    ("bad-config-arg", 2, r"modzoo train: --config configs/gpt_shakespeare.py:tset: unknown config arg tset; this "
     r"config takes test, optim \(e.g. --config FILE:test,optim=muon\)",
     lambda c: c.train(config="configs/gpt_shakespeare.py:tset")),
    ("init_from-unknown", 1, r"modzoo train: init source 'gpt-nope' is neither a pretrained name "
     r"\(gpt-shakespeare.*\), a .msgpack file nor a run directory", lambda c: c.train("--init_from", "gpt-nope")),
    ("init_from-missing-file", 1, r"modzoo train: init source .*/gone.msgpack does not exist; give a .msgpack file, a "
     r"run's workdir or a pretrained name \(gpt-shakespeare.*\)",
     lambda c: c.train("--init_from", str(c.tmp / "gone.msgpack"))),
    _other_architecture("width", 64, "'blocks/layers/attn/out/kernel (1, 32, 32) vs (1, 64, 64)'"),
    _other_architecture("depth", 2, "'blocks/layers/attn/out/kernel (1, 32, 32) vs (2, 32, 32)'"),
    _other_architecture("context", 32, "'embed/lookup/position/table (16, 32) vs (32, 32)'"),
    ("run-of-another-model", 1, r"modzoo train: {run} holds a run of model gpt-shakespeare that this config cannot "
     r"resume \(width 32 there, 64 here\); use a new --workdir, or the config it was trained with",
     lambda c: c.train("--config.model.width=64", workdir=c.run)),
    ("run-of-another-optimizer", 1, r"modzoo train: {run} holds a run of model gpt-shakespeare that this config "
     r"cannot resume \(optimizer adamw there, scion here\); use a new --workdir, or the config it was trained with",
     lambda c: c.train(config="configs/gpt_shakespeare.py:test,optim=scion", workdir=c.run)),
    ("workdir-is-a-file", 1, r"modzoo train: workdir {file} is a file, not a folder; give a folder's path \(created "
     r"if missing\), e.g. --workdir runs/NAME", lambda c: c.train(workdir=c.file)),
    ("workdir-under-a-file", 1, r"modzoo train: workdir {file}/run \(under {file}\) is a file, not a folder; .*",
     lambda c: c.train(workdir=c.file / "run", watch=c.file)),
    ("read-only-run", 1, r"modzoo train: workdir {run} is not writable; give a --workdir you can write to, or make "
     r"{run} writable", _read_only_run),
    ("new-workdir-in-a-read-only-folder", 1, r"modzoo train: workdir {locked}/run \(under {locked}\) is not writable; "
     r"give a --workdir you can write to, or make {locked} writable", _in_read_only_folder),
    ("mesh-not-dividing-the-devices", 1, r"modzoo train: mesh \{{'data': -1, 'fsdp': 1, 'tensor': 3\}}: the fixed "
     r"axes' product 3 does not divide the 8 devices; e.g. mesh.tensor=1", lambda c: c.train("--config.mesh.tensor=3")),
    ("mesh-not-dividing-the-batch", 1, r"modzoo train: train.batch_size=12 does not split over the mesh's 8 batch "
     r"shards \(data 8 x fsdp 1\); use a multiple of 8, e.g. train.batch_size=8, or a mesh whose data x fsdp "
     r"divides 12", lambda c: c.train("--config.train.batch_size=12")),
    ("smaller-mesh-not-dividing-the-batch", 1, r"modzoo train: train.batch_size=8 does not split over the mesh's 3 "
     r"batch shards \(data 3 x fsdp 1\); use a multiple of 3, e.g. train.batch_size=6, .*",
     lambda c: c.train("--config.mesh.data=3")),
    ("eval-of-another-model", 1, r"modzoo eval: checkpoint in {run} does not match this model's architecture .*",
     lambda c: (["eval", "--config", CONFIG, "--workdir", str(c.run), "--config.model.width=64"], c.run)),
    ("eval-without-a-source", 2, r"modzoo eval: give --workdir DIR \(a run\) or --init_from NAME_OR_PATH",
     lambda c: (["eval", "--config", CONFIG], c.new)),
    *[(f"sweep-{name}", 1, "modzoo sweep: " + line, lambda c, flag=flag: (
        ["sweep", "--config", SWEEP, "--workdir", str(c.new), *flag], c.new)) for name, line, flag in [
        ("heads-not-dividing-a-width", r"gpt width 32 is not divisible by heads 3; pick heads that divide the width, "
         r"e.g. heads=2", ["--config.model.heads=3"]),
        ("steps=0", r"train.steps must be a whole number in 1..2147483647, got 0; e.g. --config.train.steps=1000",
         ["--config.train.steps=0"]),
        ("mesh-not-dividing-the-batch", r"train.batch_size=12 does not split over the mesh's 8 batch shards .*",
         ["--config.train.batch_size=12"]),
        ("missing-data-file", r"text dataset '/nonexistent/x.txt' is neither a known corpus .*",
         ["--config.data.name=/nonexistent/x.txt"])]],
    ("sweep-workdir-is-a-file", 1, r"modzoo sweep: workdir {file} is a file, not a folder; .*",
     lambda c: (["sweep", "--config", SWEEP, "--workdir", str(c.file)], c.file)),
    ("sample-unknown-pretrained", 1, r"modzoo sample: no pretrained weights named 'nope'; available: gpt-shakespeare.*",
     lambda c: (["sample", "--pretrained", "nope"], c.new)),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_and_leaves_the_workdir_alone(row, trained, tmp_path, capsys, monkeypatch, request):
    _, status, pattern, setup = row
    c = _Context(tmp_path, trained, monkeypatch, request)
    argv, watched = setup(c)
    before = _tree(watched)
    got, line = _refused(capsys, argv)
    paths = {k: re.escape(str(v)) for k, v in dict(run=c.run, file=c.file, locked=c.locked, trained=trained).items()}
    assert re.fullmatch(pattern.format(**paths), line), line
    assert got == status
    assert _tree(watched) == before  # a new workdir is not created; an existing one keeps every byte


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    argv = [*TRAIN, "--workdir", str(tmp_path / "new"), "--config.model.width=0"]
    monkeypatch.setenv("MODZOO_DEBUG", "1")
    with pytest.raises(ValueError, match="gpt width must be a whole number in 1..2147483647, got 0"):
        main(argv)
    monkeypatch.delenv("MODZOO_DEBUG")
    for debug_argv in (["--debug", *argv], [*argv[:3], "--debug", *argv[3:]]):
        with pytest.raises(ValueError, match="gpt width must be a whole number in 1..2147483647, got 0"):
            main(debug_argv)
    assert not (tmp_path / "new").exists()


def test_an_error_raised_inside_a_library_is_a_bug_and_keeps_its_traceback(tmp_path, monkeypatch):
    def broken(config, workdir):
        return np.reshape(np.arange(3), (2, 2))  # numpy raises the ValueError: not a refusal of modzoo's

    monkeypatch.setattr("zoo.train.train", broken)
    with pytest.raises(ValueError, match="cannot reshape"):
        main([*TRAIN, "--workdir", str(tmp_path / "new")])


@pytest.mark.parametrize("unbuffered", [True, False], ids=["a-print-fails", "the-last-flush-fails"])
def test_output_into_a_closed_pipe_ends_silently_with_141(unbuffered):
    """``modzoo list | head -1``: once the reader is gone, no broken-pipe line, and the status a shell reports for
    a program killed by SIGPIPE; whether a print meets the closed pipe (unbuffered output) or the flush at the
    end does (the output buffered)."""
    read, write = os.pipe()
    os.close(read)  # a reader that has already stopped
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(ROOT)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-m", "zoo.cli", "list"], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=env, timeout=300)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")
