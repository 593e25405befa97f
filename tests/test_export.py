"""``modzoo export``: a finished run becomes a pretrained entry that loads back to the run's weights."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

import zoo
from zoo import cli, pretrained
from zoo.train.loop import param_target


CONFIG = "configs/gpt_shakespeare.py"


def _train_and_export(tmp_path, monkeypatch, *overrides):
    """Train the test variant with ``overrides``, export it as "mine" onto a shelf in ``tmp_path`` (the catalog
    pointed there), and return the run's workdir, the shelf and the entry."""
    run, shelf = tmp_path / "run", tmp_path / "pretrained"
    flags = ["--config", f"{CONFIG}:test", "--workdir", str(run), *overrides]
    cli.main(["train", *flags])
    shelf.mkdir()
    monkeypatch.setattr(pretrained, "HERE", shelf)
    monkeypatch.setattr(pretrained, "CATALOG", shelf / "catalog.json")
    cli.main(["export", *flags, "--name", "mine"])
    return run, shelf, json.loads((shelf / "catalog.json").read_text())["mine"]


def test_export_records_only_the_fields_set_and_loads_back(tmp_path, monkeypatch):
    run, shelf, entry = _train_and_export(tmp_path, monkeypatch, "--config.train.steps=2",
                                          "--config.train.sample_tokens=0")
    # The test variant sets width 32, depth 1, context 16; every other field stays the preset's (not recorded).
    assert entry["model"] == "gpt-shakespeare"
    assert entry["overrides"] == {"width": 32, "depth": 1, "context": 16, "vocab": 256}
    assert entry["command"] == f"modzoo train --config {CONFIG}:test --workdir {run} " \
                               "--config.train.steps=2 --config.train.sample_tokens=0"
    assert set(entry["metric"]) == {"loss", "nats_per_byte"} and np.isfinite(entry["metric"]["loss"])
    assert entry["metric"]["nats_per_byte"] == entry["metric"]["loss"]  # bytes: one byte per token
    assert "tokenizer" not in entry and not (shelf / "mine.tokenizer.json").exists()

    from configs import gpt_shakespeare
    trained = pretrained.load_params(str(run), param_target(gpt_shakespeare.get_config("test")))
    loaded = nnx.to_pure_dict(nnx.state(zoo.load("mine")))
    assert jax.tree.structure(loaded) == jax.tree.structure(trained)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_bpe_run_ships_its_tokenizer_and_samples_through_it(tmp_path, monkeypatch, capsys):
    run, shelf, entry = _train_and_export(tmp_path, monkeypatch, "--config.train.steps=1",
                                          "--config.train.sample_tokens=0", "--config.data.tokenizer=bpe:300",
                                          "--config.model.vocab=300")
    assert entry["tokenizer"]["file"] == "mine.tokenizer.json"
    assert pretrained.tokenizer_path("mine").read_bytes() == (run / "tokenizer.json").read_bytes()
    assert entry["metric"]["loss"] / entry["metric"]["nats_per_byte"] > 1.3  # per token / per byte

    capsys.readouterr()
    cli.main(["sample", "--pretrained", "mine", "--prompt", "KING:", "--tokens", "8"])
    from data.tokenizer import load
    from zoo.sample import generate

    want = generate(zoo.load("mine"), "KING:", max_new_tokens=8, temperature=0.8, top_k=40, seed=0,
                    tokenizer=load(run / "tokenizer.json"))
    assert capsys.readouterr().out == "KING:" + want.decode("utf-8", errors="replace") + "\n"

    copy = shelf / "mine.tokenizer.json"
    copy.write_bytes(copy.read_bytes().replace(b'"merges"', b'"merges" ', 1))
    with pytest.raises(ValueError, match="mine.tokenizer.json is corrupt: sha256"):
        pretrained.tokenizer_path("mine")
