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
