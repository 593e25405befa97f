"""Host batches -> global jax arrays sharded over a mesh's batch axes (8 simulated CPU devices)."""
import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import data


def test_to_global_over_the_data_axis():
    mesh = jax.make_mesh((8,), ("data",))
    batch = {"tokens": np.arange(16 * 5, dtype=np.int32).reshape(16, 5), "label": np.arange(16, dtype=np.int32)}
    out = data.to_global(batch, mesh, ("data",))
    assert out["tokens"].shape == (16, 5) and out["label"].shape == (16,)
    assert out["tokens"].sharding == NamedSharding(mesh, PartitionSpec(("data",)))
    np.testing.assert_array_equal(np.asarray(out["tokens"]), batch["tokens"])
    rows = sorted(tuple(s.index[0].indices(16)[:2]) for s in out["tokens"].addressable_shards)
    assert rows == [(2 * i, 2 * i + 2) for i in range(8)]


def test_to_global_over_two_batch_axes_replicates_over_the_rest():
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "model"))
    images = np.random.default_rng(0).random((8, 4, 4, 3), dtype=np.float32)
    out = data.to_global({"image": images}, mesh, ("data", "fsdp"))["image"]
    assert out.shape == (8, 4, 4, 3) and out.sharding.spec == PartitionSpec(("data", "fsdp"))
    assert {s.data.shape for s in out.addressable_shards} == {(2, 4, 4, 3)}
    np.testing.assert_array_equal(np.asarray(out), images)
    assert float(jax.jit(lambda x: x.sum())(out)) == pytest.approx(float(images.sum(dtype=np.float64)), rel=1e-5)


def test_to_global_rejects_bad_axes_and_batches():
    mesh = jax.make_mesh((8,), ("data",))
    with pytest.raises(ValueError, match=r"mesh axes \['batch'\] not in the mesh"):
        data.to_global({"x": np.zeros((8, 2))}, mesh, ("batch",))
    with pytest.raises(ValueError, match="does not split into 8 shards"):
        data.to_global({"x": np.zeros((12, 2))}, mesh, ("data",))


def test_global_batch_must_divide_over_processes():
    with pytest.raises(ValueError, match="global batch size 10 must be a positive multiple of the 4 processes"):
        data.distributed.per_host_batch(10, data.Shard(0, 4))
    with pytest.raises(ValueError, match="shard index 2 is outside"):
        data.Shard(2, 2)
