"""Registry behaviour: listing, overrides, errors."""

import pytest
from flax import nnx

import zoo


def test_list_models_glob_and_families():
    names = zoo.list_models()
    assert names == sorted(names)
    for family in ("gpt", "resmlp", "resnet"):
        matched = zoo.list_models(f"{family}-*")
        assert len(matched) >= 3 and all(zoo.get_config(n).family == family for n in matched)


def test_get_config_overrides_without_allocating():
    cfg = zoo.get_config("gpt-small", width=1536, depth=24)
    assert (cfg.width, cfg.depth, cfg.heads) == (1536, 24, 12)
    assert zoo.get_config("gpt-small").width == 768  # the registered preset is unchanged


def test_unknown_name_lists_close_matches_first():
    with pytest.raises(KeyError, match=r"unknown model 'gtp-tiny'; available \(closest first\): gpt-tiny"):
        zoo.create("gtp-tiny", rngs=nnx.Rngs(0))


def test_unknown_override_is_an_error():
    with pytest.raises(TypeError, match=r"unknown override 'widht' for model 'gpt-tiny'.*: width"):
        zoo.get_config("gpt-tiny", widht=64)


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        zoo.register("gpt-tiny", zoo.get_config("gpt-tiny"))


def test_register_rejects_non_configs():
    with pytest.raises(TypeError, match="dataclass instance"):
        zoo.register("not-a-config", object())
