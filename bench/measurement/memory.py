"""Peak memory of a run: host RSS always, device memory where the backend reports it.

Host RSS is the process's high-water mark, so in a process that trains several models it is
the peak of all runs so far, not of the last one alone. It is read from /proc/self/status
(`VmHWM`) where there is one: `getrusage`'s `ru_maxrss` survives fork and exec on Linux, so a
child started by a large parent (the peer benchmark's interpreters) would report the parent's
peak. Device memory is reset at the start of each run where the backend allows it (TensorFlow
and PyTorch on GPU); JAX has no reset, so its figure is the process's peak. On a CPU no
backend reports device memory apart from host RSS, and the value is None.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import keras

MB = 1024 * 1024


def host_peak_rss_mb() -> float:
    """Return this process's peak resident set size in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / MB if sys.platform == "darwin" else peak / 1024


def _tf_gpu() -> str | None:
    import tensorflow as tf

    return "GPU:0" if tf.config.list_logical_devices("GPU") else None


def reset_device_peak() -> None:
    """Start a fresh device-memory high-water mark where the backend can (GPU only)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpu = _tf_gpu()
        if gpu is not None:
            tf.config.experimental.reset_memory_stats(gpu)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def jax_peak_bytes(devices: list[Any]) -> int | None:
    """Return the largest `peak_bytes_in_use` of JAX accelerator devices, or None."""
    peaks = []
    for device in devices:
        if device.platform == "cpu":
            continue
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


def device_peak_mb() -> float | None:
    """Return the device-memory high-water mark in MiB, or None where none is reported."""
    backend = keras.backend.backend()
    peak: int | None = None
    if backend == "tensorflow":
        import tensorflow as tf

        gpu = _tf_gpu()
        if gpu is not None:
            peak = int(tf.config.experimental.get_memory_info(gpu)["peak"])
    elif backend == "jax":
        import jax

        peak = jax_peak_bytes(jax.local_devices())
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            peak = int(torch.cuda.max_memory_allocated())
    return peak / MB if peak is not None else None
