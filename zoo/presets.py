"""The zoo's catalog: every preset, one line each, registered by explicit calls."""

from zoo.models.gpt import GPTConfig
from zoo.models.resmlp import ResMLPConfig
from zoo.models.resnet import ResNetConfig
from zoo.registry import register

# GPT on bytes (vocabulary 256). gpt-small has GPT-2 small's dimensions.
register("gpt-tiny", GPTConfig(width=64, depth=2, heads=4, context=64))
register("gpt-shakespeare", GPTConfig(width=128, depth=4, heads=4, context=128))
register("gpt-small", GPTConfig(width=768, depth=12, heads=12, context=1024))

# ResMLP on 32x32x3 images.
register("resmlp-tiny", ResMLPConfig(width=64, depth=2))
register("resmlp-small", ResMLPConfig(width=256, depth=4))
register("resmlp-base", ResMLPConfig(width=1024, depth=8))

# ResNet on 32x32x3 images.
register("resnet-tiny", ResNetConfig(width=8, depth=1))
register("resnet-small", ResNetConfig(width=32, depth=2))
register("resnet-base", ResNetConfig(width=64, depth=3))
