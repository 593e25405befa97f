"""Multi-host layout: which slice of the data this process reads, and host batches -> global jax arrays."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


@dataclasses.dataclass(frozen=True)
class Shard:
    """This process's slice of the data: every `count`-th example starting at `index`."""

    index: int
    count: int

    def __post_init__(self):
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is outside [0, {self.count}): check process_index/count")


def current_shard(process_index: int | None = None, process_count: int | None = None) -> Shard:
    """The shard for this process (jax.process_index()/process_count() unless given, e.g. in tests)."""
    return Shard(
        jax.process_index() if process_index is None else process_index,
        jax.process_count() if process_count is None else process_count,
    )


def per_host_batch(global_batch_size: int, shard: Shard) -> int:
    """The batch each host reads so that the hosts together make `global_batch_size`."""
    if global_batch_size <= 0 or global_batch_size % shard.count:
        raise ValueError(
            f"global batch size {global_batch_size} must be a positive multiple of the {shard.count} processes"
        )
    return global_batch_size // shard.count


def to_global(batch, mesh: Mesh, axes: Sequence[str] = ("data",)):
    """Turn a host-local batch (a pytree of arrays, batch dimension first) into global jax arrays.

    Each leaf is split along its first dimension over the mesh axes `axes`
    (e.g. ("data",) or ("data", "fsdp")) and replicated over the others, with
    jax.make_array_from_process_local_data; the global batch is the hosts'
    batches stacked in process order.
    """
    axes = tuple(axes)
    unknown = [a for a in axes if a not in mesh.axis_names]
    if unknown:
        raise ValueError(f"mesh axes {unknown} not in the mesh (it has {mesh.axis_names}): pass axes= from those")
    ways = math.prod(mesh.shape[a] for a in axes)
    sharding = NamedSharding(mesh, PartitionSpec(axes))

    def place(x):
        x = np.asarray(x)
        if (x.shape[0] * jax.process_count()) % ways:
            raise ValueError(
                f"a host batch of {x.shape[0]} rows over {jax.process_count()} processes does not split into"
                f" {ways} shards along mesh axes {axes}: make the global batch a multiple of {ways}"
            )
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(place, batch)
