"""The device's practical peak: dense matrix-multiply throughput, measured in this process.

A run's efficiency is its achieved training FLOP/s as a fraction of this peak, both measured
in the same process: reported (the report, the peers, `extra_info`) and gated only against
baselines made before per-step timings (version 4 and older). The gate judges step time and
training and evaluation seconds (`bench.measurement.bands`), and the paired comparison measures
speed changes on the runner (`bench.compare`).
"""

from __future__ import annotations

import time

import keras
import numpy as np

DEFAULT_SIZE = 2048


def _sync(value: object) -> float:
    """Force the device to finish (GPU work is asynchronous) by reading one number back."""
    return float(keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.sum(value), "float32")))


def matmul_peak(dtype: str = "float32", size: int = DEFAULT_SIZE, repeats: int = 5) -> float:
    """Return the best observed FLOP/s of a `size` x `size` matmul in `dtype`.

    The best of several repeats, after a warm-up, estimates what the device can sustain;
    the clock is read only after the result has been read back.
    """
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype=np.float32), dtype)
    b = keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype=np.float32), dtype)
    _sync(keras.ops.matmul(a, b))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        _sync(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best


def compute_dtype(precision: str) -> str:
    """Return the matmul dtype a Keras dtype policy computes in (mixed_bfloat16 -> bfloat16)."""
    return keras.DTypePolicy(precision).compute_dtype
