"""Measurements taken after a run, in the same process: peaks, memory, weight summaries.

The matmul peak is probed right after each run so that it and the run's own FLOP/s see the
same machine state (another job starting later on a shared machine moves both). `peaks` also
holds float32's and bfloat16's, so runs in either precision can be set against the device's
two main limits.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from bench.measurement.flops import training_flops
from bench.measurement.memory import device_peak_mb, host_peak_rss_mb
from bench.measurement.peak import compute_dtype, matmul_peak
from bench.storage.records import Histogram, LayerSummary, Timing

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def timing(model: keras.Model, precision: str) -> Timing:
    """Return the FLOP count of one training sample, the matmul peaks and peak memory."""
    dtype = compute_dtype(precision)
    peaks = {name: matmul_peak(name) for name in dict.fromkeys((dtype, "float32", "bfloat16"))}
    return Timing(
        training_flops_per_sample=float(training_flops(model)),
        peak_flops=peaks[dtype],
        peak_dtype=dtype,
        peaks=peaks,
        peak_rss_mb=host_peak_rss_mb(),
        peak_device_memory_mb=device_peak_mb(),
    )


def weight_summaries(model: keras.Model) -> tuple[LayerSummary, ...]:
    """Summarise each conv and dense kernel: moments, quantiles and a histogram, for violins.

    Non-finite weights (a diverged run) are counted and left out of the statistics.
    """
    layers = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        values = keras.ops.convert_to_numpy(kernel).astype(np.float64).ravel()
        finite = values[np.isfinite(values)]
        base = LayerSummary(
            name=layer.name,
            kind=type(layer).__name__,
            shape=tuple(int(n) for n in kernel.shape),
            count=int(values.size),
            non_finite=int(values.size - finite.size),
        )
        if finite.size:
            counts, edges = np.histogram(finite, bins=64)
            levels = np.quantile(finite, QUANTILES)
            base = dataclasses.replace(
                base,
                mean=float(finite.mean()),
                std=float(finite.std()),
                min=float(finite.min()),
                max=float(finite.max()),
                quantiles={str(q): float(v) for q, v in zip(QUANTILES, levels, strict=True)},
                histogram=Histogram(tuple(edges.tolist()), tuple(counts.tolist())),
            )
        layers.append(base)
    return tuple(layers)
