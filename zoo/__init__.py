"""modzoo's model zoo: GPT, ResMLP and ResNet whose every parameter carries its modular-norm geometry.

>>> from flax import nnx
>>> import zoo
>>> model = zoo.create("gpt-tiny", rngs=nnx.Rngs(0), width=128)
>>> geometry = zoo.geometry(model)   # hand to an optim.* optimizer
"""

from zoo import presets as _presets  # noqa: F401  (registers the catalog)
from zoo.modular import geometry, modular_norm
from zoo.pretrained import load
from zoo.registry import build, create, get_config, list_models, register

__all__ = ["build", "create", "geometry", "get_config", "list_models", "load", "modular_norm", "register"]
