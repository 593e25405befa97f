"""``modzoo export``: a finished run becomes a pretrained entry that loads back to the run's weights."""

import json

import jax
import numpy as np
from flax import nnx

import zoo
from zoo import cli, pretrained
from zoo.train.loop import param_target


def test_export_records_only_the_fields_set_and_loads_back(tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = "configs/gpt_shakespeare.py"
    flags = ["--config", f"{config}:test", "--workdir", str(run), "--config.train.steps=2",
             "--config.train.sample_tokens=0"]
    cli.main(["train", *flags])
    shelf = tmp_path / "pretrained"
    shelf.mkdir()
    monkeypatch.setattr(pretrained, "HERE", shelf)
    monkeypatch.setattr(pretrained, "CATALOG", shelf / "catalog.json")
    cli.main(["export", *flags, "--name", "mine"])

    entry = json.loads((shelf / "catalog.json").read_text())["mine"]
    # The test variant sets width 32, depth 1, context 16; every other field stays the preset's (not recorded).
    assert entry["model"] == "gpt-shakespeare"
    assert entry["overrides"] == {"width": 32, "depth": 1, "context": 16}
    assert entry["command"] == f"modzoo train --config {config}:test --workdir {run} " \
                               "--config.train.steps=2 --config.train.sample_tokens=0"
    assert set(entry["metric"]) == {"loss"} and np.isfinite(entry["metric"]["loss"])

    from configs import gpt_shakespeare
    trained = pretrained.load_params(str(run), param_target(gpt_shakespeare.get_config("test")))
    loaded = nnx.to_pure_dict(nnx.state(zoo.load("mine")))
    assert jax.tree.structure(loaded) == jax.tree.structure(trained)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
