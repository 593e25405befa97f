"""Architectures registered from outside the package (examples/my_models.py) train, evaluate and sample
through the CLI with no edit inside the package: the loop dispatches on the config's declared modality."""

import dataclasses
import json
import pathlib
import re
from typing import ClassVar

import pytest

import zoo
from zoo.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _eval_line(out: str) -> dict:
    return json.loads([x for x in out.splitlines() if x.startswith("{")][-1])


def test_user_language_model_trains_evaluates_and_samples(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec, workdir = "examples/bigram_shakespeare.py:test", str(tmp_path / "bigram")
    main(["train", "--config", spec, "--workdir", workdir])
    trained = _eval_line(capsys.readouterr().out)
    assert (tmp_path / "bigram" / "sample.txt").stat().st_size > 0
    main(["eval", "--config", spec, "--workdir", workdir])
    assert _eval_line(capsys.readouterr().out) == trained["eval"]
    main(["sample", "--config", spec, "--workdir", workdir, "--prompt", "ROMEO:", "--tokens", "12",
          "--temperature", "0"])
    assert capsys.readouterr().out.startswith("ROMEO:")
    rows = [json.loads(x) for x in (tmp_path / "bigram" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert all("tokens_per_s" in r for r in train) and train[-1]["loss"] < train[0]["loss"]


def test_user_classifier_trains_and_evaluates(tmp_path, capsys, cifar_cache, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MODZOO_CACHE_DIR", str(cifar_cache))
    spec, workdir = "examples/pixel_mlp_cifar10.py:test", str(tmp_path / "pixel")
    main(["train", "--config", spec, "--workdir", workdir])
    trained = _eval_line(capsys.readouterr().out)
    assert set(trained["eval"]) == {"loss", "accuracy"} and 0 <= trained["eval"]["accuracy"] <= 1
    rows = [json.loads(x) for x in (tmp_path / "pixel" / "metrics.jsonl").read_text().splitlines()]
    assert any("images_per_s" in r for r in rows)
    with pytest.raises(SystemExit, match="not a language model"):
        main(["sample", "--config", spec, "--workdir", workdir])


def test_a_config_must_declare_its_modality():
    @dataclasses.dataclass(frozen=True)
    class Silent:
        width: int = 8

        def build(self, *, rngs):
            raise NotImplementedError

    with pytest.raises(ValueError, match=r"Silent.modality is None; declare one of text, image"):
        zoo.register("silent", Silent())

    @dataclasses.dataclass(frozen=True)
    class Audio(Silent):
        modality: ClassVar[str] = "audio"

    with pytest.raises(ValueError, match="Audio.modality is 'audio'"):
        zoo.register("audio", Audio())


def test_readme_shows_the_example_file():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Add your own architecture"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert code == (ROOT / "examples" / "my_models.py").read_text()
