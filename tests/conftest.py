"""Test setup: 8 simulated CPU devices (set before jax is imported), the shared data dir and one persistent
XLA compilation cache for the session."""
import atexit
import os
import pathlib
import shutil
import tempfile

# LLVM's -O0 for XLA:CPU's generated loops: the tests' programs are small, so compiling them costs more than running
# them (the suite ran in 682 s instead of about 800); the level changes no float semantics (no fast math either way).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_shared = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
if _shared.is_dir():
    os.environ.setdefault("MODZOO_DATA_DIR", str(_shared))
# The tests build the same small train steps many times from new function objects (every run, every CLI call,
# every subprocess run): JAX's persistent cache, keyed on the compiled program, compiles each once per session.
# A fresh folder per pytest process (so parallel workers never read each other's half-written entries), removed
# at exit and inherited by the runs its tests start as subprocesses; a cache folder the user set is kept.
_OWN_CACHE = "MODZOO_TESTS_OWN_XLA_CACHE"
if os.environ.get("JAX_COMPILATION_CACHE_DIR") in (None, os.environ.get(_OWN_CACHE)):
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_OWN_CACHE] = tempfile.mkdtemp(
        prefix="modzoo-tests-xla-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402

assert jax.device_count() == 8, "tests expect 8 simulated CPU devices; set XLA_FLAGS before importing jax"


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cifar_cache(tmp_path_factory):
    """CIFAR-10 prepared once per test session from the shared JPEG tarball into a temporary cache.

    Under pytest-xdist the workers share one: it lies in the run's base temporary folder (the parent of each
    worker's own), and the first worker to need it prepares it while holding a lock the others wait on."""
    import fcntl

    import data

    if not (_shared / "cifar10-jpg.tar.gz").is_file():
        pytest.skip("shared data not present")
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        cache = tmp_path_factory.mktemp("cache")
        data.image_dataset("cifar10", "train", cache_dir=cache)
        return cache
    cache = tmp_path_factory.getbasetemp().parent / "cifar-cache"
    with open(tmp_path_factory.getbasetemp().parent / "cifar-cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        cache.mkdir(exist_ok=True)
        data.image_dataset("cifar10", "train", cache_dir=cache)  # prepared by the first, found by the rest
    return cache
