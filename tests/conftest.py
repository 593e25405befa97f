"""Test setup: 8 simulated CPU devices (set before jax is imported) and the shared data dir."""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_shared = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
if _shared.is_dir():
    os.environ.setdefault("MODZOO_DATA_DIR", str(_shared))

import jax  # noqa: E402

assert jax.device_count() == 8, "tests expect 8 simulated CPU devices; set XLA_FLAGS before importing jax"


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cifar_cache(tmp_path_factory):
    """CIFAR-10 prepared once per test session from the shared JPEG tarball into a temporary cache."""
    import data

    if not (_shared / "cifar10-jpg.tar.gz").is_file():
        pytest.skip("shared data not present")
    cache = tmp_path_factory.mktemp("cache")
    data.image_dataset("cifar10", "train", cache_dir=cache)
    return cache
