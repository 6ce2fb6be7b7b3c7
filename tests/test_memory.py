"""Peak memory: host RSS follows real allocations; device memory is None on a CPU."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from bench.measurement.memory import device_peak_mb, jax_peak_bytes


@pytest.mark.slow
def test_host_peak_rss_rises_with_a_touched_allocation():
    # A fresh interpreter: in this one, earlier tests may have set a higher peak already.
    code = (
        "import numpy as np; from bench.measurement.memory import host_peak_rss_mb as peak; "
        "before = peak(); block = np.ones(32 * 1024 * 1024); "  # 256 MiB, written by ones()
        "print(before, peak(), block.sum())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    before, after, _ = map(float, result.stdout.split())
    assert 200 < after - before < 400


def test_device_memory_is_none_on_a_cpu():
    from bench.measurement.provenance import accelerator

    if accelerator() is not None:
        pytest.skip("a GPU is present: its memory is reported (tests/test_training.py)")
    assert device_peak_mb() is None


def fake_device(platform, stats):
    return SimpleNamespace(platform=platform, memory_stats=lambda: stats)


def test_jax_peak_takes_the_largest_accelerator_and_ignores_cpu_and_silent_devices():
    devices = [
        fake_device("cpu", {"peak_bytes_in_use": 10**12}),
        fake_device("gpu", {"peak_bytes_in_use": 3 * 2**20, "bytes_in_use": 2**20}),
        fake_device("gpu", {"peak_bytes_in_use": 5 * 2**20}),
        fake_device("gpu", None),
    ]
    assert jax_peak_bytes(devices) == 5 * 2**20
    assert jax_peak_bytes([fake_device("cpu", None), fake_device("gpu", {})]) is None
