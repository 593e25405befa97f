"""The train run end to end: meshes, resume, checkpoints across device counts, CLI overrides, errors."""

import json
import shutil

import numpy as np
import pytest

from configs import gpt_shakespeare, resmlp_cifar10
from zoo.cli import main
from zoo.train import train


def _gpt(steps=6, mesh=None, **train_overrides):
    """The test config (no sample: none is checked here, test_kill_loop.py and test_sample.py check them)."""
    c = gpt_shakespeare.get_config("test")
    c.train.steps = steps
    c.train.sample_tokens = 0
    c.train.update(train_overrides)
    if mesh:
        c.mesh.update(mesh)
    return c


ONE = {"data": 1, "fsdp": 1, "tensor": 1}
EIGHT = {"data": 4, "fsdp": 1, "tensor": 2}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The 6-step run on one device, uninterrupted, trained once: the reference the device, resume and mesh tests
    compare against and the finished run the init_from and mismatch tests start from (none of them writes to it).
    Returns (its workdir, its metrics)."""
    workdir = tmp_path_factory.mktemp("full") / "run"
    return workdir, train(_gpt(mesh=ONE), workdir, quiet=True)


def test_one_device_and_eight_devices_agree(tmp_path, full):
    a = full[1]
    b = train(_gpt(mesh=EIGHT), tmp_path / "eight", quiet=True)
    assert len(a["train_losses"]) == 6
    np.testing.assert_allclose(a["train_losses"], b["train_losses"], rtol=1e-4)
    assert a["eval"]["loss"] == pytest.approx(b["eval"]["loss"], rel=1e-4)
    assert a["train_losses"][-1] < a["train_losses"][0] - 0.2  # it trains


def test_resume_is_bit_identical(tmp_path, full):
    full = full[1]
    first = train(_gpt(mesh=ONE), tmp_path / "cut", stop_at=4, quiet=True)
    assert first["step"] == 4 and first["eval"] == {}
    rest = train(_gpt(mesh=ONE), tmp_path / "cut", quiet=True)
    assert rest["step"] == 6 and len(rest["train_losses"]) == 2
    assert first["train_losses"] + rest["train_losses"] == full["train_losses"]  # exact on CPU
    assert rest["eval"]["loss"] == full["eval"]["loss"]
    lines = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("save_mesh,load_mesh", [(EIGHT, ONE), (ONE, EIGHT)])
def test_checkpoint_restores_on_another_mesh(tmp_path, full, save_mesh, load_mesh):
    full = full[1]
    train(_gpt(mesh=save_mesh), tmp_path / "cut", stop_at=3, quiet=True)
    rest = train(_gpt(mesh=load_mesh), tmp_path / "cut", quiet=True)
    np.testing.assert_allclose(rest["train_losses"], full["train_losses"][3:], rtol=1e-4)


def test_resume_with_another_model_is_an_error(tmp_path, full):
    shutil.copytree(full[0], tmp_path / "w")  # a copy: the attempt may leave traces in the workdir it resumes
    c = _gpt(mesh=ONE)
    c.model.width = 64
    with pytest.raises(ValueError, match="holds a run of model"):
        train(c, tmp_path / "w", quiet=True)


def test_init_from_mismatched_architecture_is_an_error(tmp_path, full):
    c = _gpt(mesh=ONE)  # the same config as the test above: built once
    c.model.width = 64
    c.init_from = str(full[0])
    with pytest.raises(ValueError, match="does not match this model's architecture"):
        train(c, tmp_path / "dst", quiet=True)


def test_init_from_a_run_starts_from_its_weights(tmp_path, full):
    workdir, src = full
    c = _gpt(mesh=ONE)  # the source's config: its compiled step is reused
    c.init_from = str(workdir)
    c.optim.learning_rate = 1e-9  # no-op steps: the loss stays the source's trained loss
    out = train(c, tmp_path / "dst", quiet=True)
    assert out["eval"]["loss"] == pytest.approx(src["eval"]["loss"], rel=1e-3)


def test_eval_batches_evaluates_the_first_batches_of_the_split(full):
    """``train.eval_batches=2``: the mask-weighted cross-entropy of the first two evaluation batches, in numpy."""
    from scipy.special import log_softmax

    import data
    from zoo import pretrained
    from zoo.train import Run, evaluate
    from zoo.train.loop import datasets, model_config, param_target

    workdir, src = full
    c = _gpt(mesh=ONE, eval_batches=2)
    model = Run(c, with_optimizer=False).model(pretrained.load_params(str(workdir), param_target(c)))
    batches = data.make_eval_batches(datasets(c, model_config(c))[1], c.train.eval_batch_size)
    assert len(batches) > 2
    total = weight = 0.0
    for batch in batches[:2]:
        tokens, mask = np.asarray(batch["tokens"]), np.asarray(batch["mask"], np.float64)
        logp = log_softmax(np.asarray(model(tokens[:, :-1]), np.float64), axis=-1)
        total -= (np.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0] * mask).sum()
        weight += mask.sum()
    got = evaluate(c, str(workdir))["loss"]
    assert got == pytest.approx(total / weight, rel=1e-5)
    assert abs(got - src["eval"]["loss"]) > 1e-4  # the whole split's loss is another number


def test_image_run_trains_and_evaluates(tmp_path, cifar_cache, monkeypatch):
    monkeypatch.setenv("MODZOO_CACHE_DIR", str(cifar_cache))
    c = resmlp_cifar10.get_config("test")
    out = train(c, tmp_path / "img", quiet=True)
    assert out["step"] == 4 and 0.0 <= out["eval"]["accuracy"] <= 1.0
    assert np.isfinite(out["eval"]["loss"])


@pytest.mark.parametrize("optim_name", ["scion", "normalized_adam", "muon", "adamw"])
def test_every_optimizer_is_selectable_by_one_field(tmp_path, optim_name):
    config = gpt_shakespeare.get_config(f"test,optim={optim_name}")
    config.mesh.data = 1  # one device compiles quicker; each optimizer's sharded update is test_optim_gpt.py's
    config.train.sample_tokens = 0
    out = train(config, tmp_path / optim_name, quiet=True)
    assert out["train_losses"][-1] < out["train_losses"][0]


def test_cli_train_with_overrides(tmp_path, capsys):
    main(["train", "--config", "configs/gpt_shakespeare.py:test", "--workdir", str(tmp_path / "cli"),
          "--config.train.steps=3", "--config.optim.learning_rate=0.25", "--config.mesh.data=1"])
    out = capsys.readouterr().out
    assert "steps 0..3" in out and '"step": 3' in out
    lines = [json.loads(x) for x in (tmp_path / "cli" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["learning_rate"] == pytest.approx(0.25)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "cli" / "tensorboard").iterdir())


def test_cli_rejects_unknown_config_field(tmp_path):
    with pytest.raises(SystemExit, match="optim.learning_rat"):
        main(["train", "--config", "configs/gpt_shakespeare.py:test", "--workdir", str(tmp_path),
              "--config.optim.learning_rat=0.1"])


def test_cli_overrides_any_model_field(tmp_path, capsys):
    main(["train", "--config", "configs/gpt_shakespeare.py:test", "--workdir", str(tmp_path / "wide"),
          "--config.model.width=48", "--config.model.depth=1", "--config.model.heads=3", "--config.train.steps=1",
          "--config.mesh.data=1", "--config.train.sample_tokens=0"])  # a new model: compiled on one device, quicker
    out = capsys.readouterr().out
    assert "blocks.layers.attn.out.kernel           1x48x48" in out and "embed.lookup.token.table" in out
    with pytest.raises(SystemExit, match=r"unknown field 'model.widht'.* has: .*depth.*heads.*width"):
        main(["train", "--config", "configs/gpt_shakespeare.py:test", "--workdir", str(tmp_path / "bad"),
              "--config.model.widht=48"])


def _strict_json(line):
    def reject(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=reject)


@pytest.mark.parametrize("lr,every,message,kept", [
    ("1e38", 100, "the gradient norm is nan at step 2", []),  # weights ~1e38 after step 1: NaN gradients
    ("1e38", 1, "the gradient norm is nan at step 2", [1]),  # caught before saving step 2
])  # an infinite rate is bad input (tests/test_bad_input.py), refused before any step
def test_divergence_stops_the_run_and_saves_nothing_non_finite(tmp_path, capsys, lr, every, message, kept):
    argv = ["train", "--config", "configs/gpt_shakespeare.py:test,optim=adamw", "--workdir", str(tmp_path),
            f"--config.optim.learning_rate={lr}", "--config.train.steps=6", "--config.train.log_every=1",
            f"--config.train.checkpoint_every={every}", "--config.train.eval_every=0",
            "--config.mesh.data=1"]  # the AdamW run the optimizer test above compiled
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    where = "the last good state is the checkpoint of step 1" if kept else "nothing was saved"
    assert err == f"modzoo train: {message}; stopped, {where}; lower the learning rate or clip gradients " \
                  "(--config.optim.clip_norm=1)"
    rows = [_strict_json(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) <= 3
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == kept


def test_runs_that_differ_in_learning_rate_share_one_compilation(tmp_path):
    from zoo.train import loop

    def config(lr):
        c = _gpt(mesh=ONE)  # the module's run: XLA's compilation cache has its programs
        c.optim.learning_rate = lr
        return c

    loop._CACHE.clear()
    train(config(0.1), tmp_path / "a", quiet=True)
    compiled = list(loop._CACHE.values())
    second = train(config(0.3), tmp_path / "b", quiet=True)
    assert list(loop._CACHE.values()) == compiled  # reused, not rebuilt
    loop._CACHE.clear()
    alone = train(config(0.3), tmp_path / "c", quiet=True)
    assert second["train_losses"] == alone["train_losses"] and second["eval"] == alone["eval"]
