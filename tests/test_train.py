"""The train run end to end: meshes, resume, checkpoints across device counts, CLI overrides, errors."""

import json

import numpy as np
import pytest

from configs import gpt_shakespeare, resmlp_cifar10
from zoo.cli import main
from zoo.train import train


def _gpt(steps=6, mesh=None, **train_overrides):
    c = gpt_shakespeare.get_config("test")
    c.train.steps = steps
    c.train.update(train_overrides)
    if mesh:
        c.mesh.update(mesh)
    return c


ONE = {"data": 1, "fsdp": 1, "tensor": 1}
EIGHT = {"data": 4, "fsdp": 1, "tensor": 2}


def test_one_device_and_eight_devices_agree(tmp_path):
    a = train(_gpt(mesh=ONE), tmp_path / "one", quiet=True)
    b = train(_gpt(mesh=EIGHT), tmp_path / "eight", quiet=True)
    assert len(a["train_losses"]) == 6
    np.testing.assert_allclose(a["train_losses"], b["train_losses"], rtol=1e-4)
    assert a["eval"]["loss"] == pytest.approx(b["eval"]["loss"], rel=1e-4)
    assert a["train_losses"][-1] < a["train_losses"][0] - 0.2  # it trains


def test_resume_is_bit_identical(tmp_path):
    full = train(_gpt(mesh=ONE), tmp_path / "full", quiet=True)
    first = train(_gpt(mesh=ONE), tmp_path / "cut", stop_at=4, quiet=True)
    assert first["step"] == 4 and first["eval"] == {}
    rest = train(_gpt(mesh=ONE), tmp_path / "cut", quiet=True)
    assert rest["step"] == 6 and len(rest["train_losses"]) == 2
    assert first["train_losses"] + rest["train_losses"] == full["train_losses"]  # exact on CPU
    assert rest["eval"]["loss"] == full["eval"]["loss"]
    lines = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("save_mesh,load_mesh", [(EIGHT, ONE), (ONE, EIGHT)])
def test_checkpoint_restores_on_another_mesh(tmp_path, save_mesh, load_mesh):
    full = train(_gpt(mesh=ONE), tmp_path / "full", quiet=True)
    train(_gpt(mesh=save_mesh), tmp_path / "cut", stop_at=3, quiet=True)
    rest = train(_gpt(mesh=load_mesh), tmp_path / "cut", quiet=True)
    np.testing.assert_allclose(rest["train_losses"], full["train_losses"][3:], rtol=1e-4)


def test_resume_with_another_model_is_an_error(tmp_path):
    train(_gpt(steps=2, mesh=ONE), tmp_path / "w", quiet=True)
    c = _gpt(steps=4, mesh=ONE)
    c.model.width = 64
    with pytest.raises(ValueError, match="holds a run of model"):
        train(c, tmp_path / "w", quiet=True)


def test_init_from_mismatched_architecture_is_an_error(tmp_path):
    train(_gpt(steps=2, mesh=ONE), tmp_path / "src", quiet=True)
    c = _gpt(steps=2, mesh=ONE)
    c.model.width = 64
    c.init_from = str(tmp_path / "src")
    with pytest.raises(ValueError, match="does not match this model's architecture"):
        train(c, tmp_path / "dst", quiet=True)


def test_init_from_a_run_starts_from_its_weights(tmp_path):
    src = train(_gpt(steps=6, mesh=ONE), tmp_path / "src", quiet=True)
    c = _gpt(steps=1, mesh=ONE)
    c.init_from = str(tmp_path / "src")
    c.optim.learning_rate = 1e-9  # a no-op step: the first loss is the source's trained loss
    out = train(c, tmp_path / "dst", quiet=True)
    assert out["eval"]["loss"] == pytest.approx(src["eval"]["loss"], rel=1e-3)


def test_image_run_trains_and_evaluates(tmp_path, cifar_cache, monkeypatch):
    monkeypatch.setenv("MODZOO_CACHE_DIR", str(cifar_cache))
    c = resmlp_cifar10.get_config("test")
    out = train(c, tmp_path / "img", quiet=True)
    assert out["step"] == 4 and 0.0 <= out["eval"]["accuracy"] <= 1.0
    assert np.isfinite(out["eval"]["loss"])


@pytest.mark.parametrize("optim_name", ["scion", "normalized_adam", "muon", "adamw"])
def test_every_optimizer_is_selectable_by_one_field(tmp_path, optim_name):
    out = train(gpt_shakespeare.get_config(f"test,optim={optim_name}"), tmp_path / optim_name, quiet=True)
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
