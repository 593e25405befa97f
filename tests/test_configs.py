"""Every shipped config's ``:test`` variant runs: the run configs train and evaluate, and each sweep's first
point at each size trains (the whole miniature sweep runs in test_sweep.py)."""

import importlib
import math
import pathlib

import pytest

from zoo.sweep import grid
from zoo.sweep.grid import Point
from zoo.train import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Configs whose :test variant (or, for the fine-tuning one, a 30-step run) another test already trains.
ELSEWHERE = {"gpt_shakespeare": "test_train.py", "resmlp_cifar10": "test_train.py",
             "gpt_finetune_tinystories": "test_pretrained.py", "gpt_width": "test_sweep.py"}
RUNS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem not in ("__init__", "common"))
SWEEPS = sorted(p.stem for p in (ROOT / "configs" / "sweeps").glob("*.py") if p.stem not in ("__init__", "common"))


def test_every_config_is_trained_by_some_test():
    for name in set(RUNS) | set(SWEEPS):
        where = ELSEWHERE.get(name)
        if where:
            assert f"{name}" in (ROOT / "tests" / where).read_text(), (name, where)


def _module(name):
    return importlib.import_module(f"configs.{name}" if name in RUNS else f"configs.sweeps.{name}")


@pytest.mark.parametrize("name", [n for n in RUNS if n not in ELSEWHERE])
def test_run_config_test_variant_trains(name, tmp_path, cifar_cache, monkeypatch):
    monkeypatch.setenv("MODZOO_CACHE_DIR", str(cifar_cache))
    config = _module(name).get_config("test")
    config.train.sample_tokens = 0
    config.mesh.data = 1  # one device compiles quicker; meshes are test_train.py's
    out = train(config, tmp_path, quiet=True)
    assert out["step"] == config.train.steps and math.isfinite(out["eval"]["loss"])


@pytest.mark.parametrize("name", [n for n in SWEEPS if n not in ELSEWHERE])
def test_sweep_config_test_variant_trains_a_point_per_size(name, tmp_path, cifar_cache, monkeypatch):
    monkeypatch.setenv("MODZOO_CACHE_DIR", str(cifar_cache))
    module = _module(name)
    config = module.get_config("test")
    grid.check(config)
    optimizer, (lo, _) = min(config.sweep.rates.items())  # its lowest rate: no test variant diverges there
    for size in config.sweep.sizes:
        point = Point(optimizer, int(size), int(lo), 0)
        point_config = grid.point_config(config, point)
        point_config.mesh.data = 1  # as above
        out = train(point_config, tmp_path / point.id(config.sweep.axis), quiet=True)
        assert out["step"] == config.train.steps and math.isfinite(out["eval"]["loss"])
    for variant in (None, "gpu"):  # the full-scale variants build valid grids
        full = module.get_config(variant)
        grid.check(full)
        assert len(full.sweep.sizes) >= 4 and max(full.sweep.sizes) >= 8 * min(full.sweep.sizes)
        assert set(full.sweep.rates) == {"scion", "normalized_adam", "muon", "adamw"}
