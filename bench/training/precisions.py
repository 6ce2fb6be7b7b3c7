"""The Keras dtype policies a run may use, and `auto`, the measured-fastest one for the device.

Keras-free at import time, so option parsing needs no backend.

`auto` (the default) resolves, per backend and device, to the policy measured to be fastest
while keeping the accuracy inside the float32 seed band (README, "Speed"):

* TensorFlow on a CPU with bfloat16 arithmetic (AVX512_BF16 or AMX_BF16): `mixed_bfloat16`
  (oneDNN's bfloat16 kernels), 2.0-2.9x faster than float32 on this project's reference
  machine at the `ci` budget, with every run's accuracy inside the float32 seed band;
  float16 is no faster than float32 there (matmul 402 against 391 GFLOP/s; bfloat16 1,536);
* anything else, GPUs and the JAX and PyTorch backends included: `float32`. Mixed precision
  there is one switch away (`--precision mixed_bfloat16`) but has not been shown faster at
  equal accuracy yet, and the default changes only on evidence.

Records store the resolved policy, so baselines and gates never see `auto`.
"""

from __future__ import annotations

from pathlib import Path

from bench.vocabulary import AUTO, DEFAULT_PRECISION, POLICIES, PRECISIONS

__all__ = ["AUTO", "DEFAULT_PRECISION", "POLICIES", "PRECISIONS", "auto_policy", "cpu_flags",
           "resolve"]  # fmt: skip
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """Return the CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def auto_policy(device_kind: str, flags: frozenset[str], backend: str = "tensorflow") -> str:
    """Return the policy `auto` means for a Keras backend on a device ('cpu' or 'gpu')."""
    if backend == "tensorflow" and device_kind == "cpu" and flags & BF16_CPU_FLAGS:
        return "mixed_bfloat16"
    return "float32"


def resolve(precision: str, device_kind: str | None = None) -> str:
    """Return the Keras policy for `precision`; `auto` is resolved for the current backend.

    `device_kind` defaults to the device the current Keras backend trains on (this imports
    the backend).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}. Valid: {', '.join(PRECISIONS)}")
    if precision != AUTO:
        return precision
    import keras

    if device_kind is None:
        from bench.measurement.provenance import accelerator

        device_kind = "gpu" if accelerator() else "cpu"
    return auto_policy(device_kind, cpu_flags(), keras.backend.backend())
