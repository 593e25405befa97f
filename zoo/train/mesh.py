"""Device meshes and the logical-axis rules that place parameters and batches on them.

Model code names logical axes only (``Geometry.axes``: "embed", "mlp",
"heads", "vocab", "conv_in", "conv_out", "layers"); one rules table maps them
onto mesh axes (data, fsdp, tensor), as Levanter and MaxText do. A dimension
that does not divide its mesh axis stays replicated, so one config runs on one
CPU, 8 simulated devices or a GPU machine.
"""

from __future__ import annotations

import math
import numbers
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


ROLE_VARIABLES = ("MODZOO_COORDINATOR", "MODZOO_NUM_PROCESSES", "MODZOO_PROCESS_ID")
CLUSTER_MARKERS = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")


def _explicit_role() -> dict | None:
    """``jax.distributed.initialize`` arguments from the MODZOO_* variables, or None when none is set."""
    coordinator, count, index = (os.environ.get(v) for v in ROLE_VARIABLES)
    if not (coordinator or count or index):
        return None
    missing = [v for v, x in zip(ROLE_VARIABLES, (coordinator, count, index)) if not x]
    if missing:
        raise ValueError(f"multi-process run: {', '.join(missing)} not set; set {', '.join(ROLE_VARIABLES)} together")
    try:
        count, index = int(count), int(index)
    except ValueError:
        raise ValueError(f"MODZOO_NUM_PROCESSES={count!r} and MODZOO_PROCESS_ID={index!r} must be integers") from None
    if not 0 <= index < count:
        raise ValueError(f"MODZOO_PROCESS_ID={index} is outside [0, MODZOO_NUM_PROCESSES={count})")
    return dict(coordinator_address=coordinator, num_processes=count, process_id=index)


def maybe_initialize_distributed() -> bool:
    """Join a multi-process job when the environment describes one; return whether this is one.

    Each process learns its role from three variables set together::

        MODZOO_COORDINATOR=host:port   # process 0's address; it serves there
        MODZOO_NUM_PROCESSES=N
        MODZOO_PROCESS_ID=i            # 0 <= i < N, a different one per process

    (process 0 binds all interfaces on that port unless
    ``JAX_COORDINATOR_BIND_ADDRESS``, e.g. ``127.0.0.1:port``, narrows it), or
    else from a cluster JAX detects itself: SLURM with more than one task, Open
    MPI, Cloud TPU pods, or ``JAX_COORDINATOR_ADDRESS`` on such a cluster. Every
    process then runs the same program: ``jax.devices()`` lists all processes'
    devices, each process reads its own slice of the data and writes its shards
    of each checkpoint. On CPU the processes reduce across each other over gloo.
    With none of these variables, or once joined, it does nothing. Call it
    before anything touches a JAX device.
    """
    if jax.distributed.is_initialized():
        return True
    role = _explicit_role()
    if role is None:
        if not any(os.environ.get(m) for m in CLUSTER_MARKERS) or os.environ.get("SLURM_NTASKS") == "1":
            return False
        role = {}  # JAX reads the cluster's own description
    if jax.config.jax_cpu_collectives_implementation is None:  # without it CPU processes cannot reduce together
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**role)
    return True


def make_mesh(shape: Mapping[str, int], devices=None) -> Mesh:
    """A mesh with axes ``data, fsdp, tensor`` over ``devices`` (default all).

    One size may be -1 (the rest of the devices); with no -1, a mesh smaller
    than the device count uses the first devices (e.g. all sizes 1: one device).
    When the devices belong to several processes it must use them all: the
    first ones would be process 0's alone, leaving the others nowhere to place
    their share of each batch (an equal part of every process's devices would
    work, but leaves accelerators idle; the message asks for -1 instead).
    """
    devices = list(jax.devices() if devices is None else devices)
    unknown = set(shape) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"unknown mesh axes {sorted(unknown)}; use {MESH_AXES}")
    sizes = [shape.get(a, 1) for a in MESH_AXES]
    for axis, size in zip(MESH_AXES, sizes):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or (size < 1 and size != -1):
            raise ValueError(f"mesh {axis} is {size!r}; a mesh size is a whole number >= 1, or -1 for the rest of "
                             f"the devices: e.g. mesh.{axis}=1")
    sizes = [int(s) for s in sizes]
    if sizes.count(-1) > 1:
        second = [a for a, s in zip(MESH_AXES, sizes) if s == -1][1]
        raise ValueError(f"at most one mesh axis may be -1, got {dict(shape)}; give the others a size, "
                         f"e.g. mesh.{second}=1")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % known:
            fits = _dividing(sizes, len(devices))
            raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))}: the fixed axes' product {known} does not divide "
                             f"the {len(devices)} devices; e.g. {', '.join(f'mesh.{a}={s}' for a, s in fits.items())}")
        sizes[sizes.index(-1)] = len(devices) // known
    elif math.prod(sizes) < len(devices):
        processes = len({d.process_index for d in devices})
        if processes > 1:  # the example: the first axis that, as -1, takes all the devices
            rest = next((a for a, n in zip(MESH_AXES, sizes) if len(devices) % (math.prod(sizes) // n) == 0), "data")
            raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} uses {math.prod(sizes)} of the {len(devices)} "
                             f"devices of {processes} processes; a multi-process mesh takes every device: set one "
                             f"axis to -1, e.g. mesh.{rest}=-1")
        devices = devices[: math.prod(sizes)]
    if math.prod(sizes) != len(devices):
        raise ValueError(f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
                         f"{len(devices)} are present; set one axis to -1")
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices)


def _dividing(sizes: list[int], devices: int) -> dict[str, int]:
    """For a message's example: the fixed mesh sizes that change when each is cut to a divisor of what
    ``devices`` leaves for it (so their product divides ``devices``)."""
    out, left = {}, devices
    for axis, size in zip(MESH_AXES, sizes):
        if size != -1:
            fit = math.gcd(size, left)
            left //= fit
            if fit != size:
                out[axis] = fit
    return out


def check_batch(mesh: Mesh, batch_size: int, field: str) -> None:
    """A one-line ValueError unless a global batch of ``batch_size`` splits evenly over ``mesh``'s batch axes;
    ``field`` names the setting (e.g. ``train.batch_size``) in the message."""
    ways = math.prod(mesh.shape[a] for a in batch_axes(mesh))
    if batch_size % ways:
        fit = max(ways, batch_size // ways * ways)
        raise ValueError(f"{field}={batch_size} does not split over the mesh's {ways} batch shards "
                         f"({' x '.join(f'{a} {mesh.shape[a]}' for a in batch_axes(mesh))}); use a multiple of "
                         f"{ways}, e.g. {field}={fit}, or a mesh whose data x fsdp divides {batch_size}")


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
