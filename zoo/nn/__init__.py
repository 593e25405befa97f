"""Atoms, bonds and combinators of the modular norm, as ordinary Flax NNX modules."""

from zoo.nn.atoms import Bias, Conv2D, Embed, Gain, Linear, PositionEmbed
from zoo.nn.bonds import (GELU, Add, AvgPool, DotProductAttention, Flatten, GlobalAvgPool, MeanSubtract,
                          MergeHeads, ReLU, RMSNorm, SplitHeads)
from zoo.nn.combinators import FusedParallel, Parallel, Residual, Scaled, Sequential
from zoo.nn.module import Atom, Bond, Module, assign_geometry

__all__ = [
    "Add", "Atom", "AvgPool", "Bias", "Bond", "Conv2D", "DotProductAttention", "Embed", "Flatten", "FusedParallel", "GELU", "Gain",
    "GlobalAvgPool",
    "Linear", "MeanSubtract", "MergeHeads", "Module", "Parallel", "PositionEmbed", "RMSNorm", "ReLU", "Residual", "Scaled",
    "Sequential", "SplitHeads", "assign_geometry",
]
