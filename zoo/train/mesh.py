"""Device meshes and the logical-axis rules that place parameters and batches on them.

Model code names logical axes only (``Geometry.axes``: "embed", "mlp",
"heads", "vocab", "conv_in", "conv_out", "layers"); one rules table maps them
onto mesh axes (data, fsdp, tensor), as Levanter and MaxText do. A dimension
that does not divide its mesh axis stays replicated, so one config runs on one
CPU, 8 simulated devices or a GPU machine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from optim.geometry import pair

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")
DEFAULT_RULES = {
    "layers": None,
    "vocab": "tensor",
    "embed": "fsdp",
    "mlp": "tensor",
    "heads": "tensor",
    "conv_in": "fsdp",
    "conv_out": "tensor",
}


def maybe_initialize_distributed() -> None:
    """Start ``jax.distributed`` when the environment describes a multi-process job.

    Triggers on JAX's own coordinator variables or a cluster that JAX detects
    (SLURM, Open MPI, Cloud TPU); on a single machine it does nothing.
    """
    markers = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")
    many = any(os.environ.get(m) for m in markers) and os.environ.get("SLURM_NTASKS", "2") != "1"
    if many and not jax.distributed.is_initialized():
        jax.distributed.initialize()


def make_mesh(shape: Mapping[str, int], devices=None) -> Mesh:
    """A mesh with axes ``data, fsdp, tensor`` over ``devices`` (default all).

    One size may be -1 (the rest of the devices); with no -1, a mesh smaller
    than the device count uses the first devices (e.g. all sizes 1: one device).
    """
    devices = list(jax.devices() if devices is None else devices)
    unknown = set(shape) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"unknown mesh axes {sorted(unknown)}; use {MESH_AXES}")
    sizes = [int(shape.get(a, 1)) for a in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {dict(shape)}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"{len(devices)} devices do not divide by the fixed mesh axes ({known}); fix the mesh sizes")
        sizes[sizes.index(-1)] = len(devices) // known
    elif math.prod(sizes) < len(devices):
        devices = devices[: math.prod(sizes)]
    if math.prod(sizes) != len(devices):
        raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                         f"{len(devices)} are present; set one axis to -1")
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices)


def param_spec(geometry, shape, mesh: Mesh, rules: Mapping[str, str | None] = DEFAULT_RULES) -> PartitionSpec:
    """PartitionSpec for one parameter: each logical axis through ``rules``, if its dim divides the mesh axis."""
    used, spec = set(), []
    for name, dim in zip(geometry.axes, shape):
        axis = rules.get(name) if name else None
        size = mesh.shape.get(axis, 1) if axis else 1
        if axis and size > 1 and dim % size == 0 and axis not in used:
            spec.append(axis)
            used.add(axis)
        else:
            spec.append(None)
    return PartitionSpec(*spec)


def param_shardings(geometry_tree, params, mesh: Mesh, rules=DEFAULT_RULES):
    """NamedShardings for a params tree, paired with its geometry by leaf order."""
    leaves, geos, treedef = pair(params, geometry_tree, "params")
    return jax.tree.unflatten(treedef, [NamedSharding(mesh, param_spec(g, x.shape, mesh, rules))
                                        for g, x in zip(geos, leaves)])


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes a batch's leading dimension is split over."""
    return tuple(a for a in BATCH_AXES if a in mesh.shape)
