"""Every figure derived from a run record, computed here once and named for what it is.

The gate, the benchmark's `extra_info` and the report all read `RunMetrics`, so a name means
the same thing everywhere:

* steady epochs are the epochs that did not trace and compile the train step;
* `median_*` is over steady epochs (the typical speed), `best_*` is the fastest steady epoch
  (what the code achieves when the shared machine is not throttling it, as
  pytest-benchmark's `min`);
* `efficiency` = training FLOPs per sample x samples / best epoch seconds / the matmul peak
  measured in the same process: comparable across machines of different speeds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.records import RunRecord


@dataclass(frozen=True)
class RunMetrics:
    """The derived figures of one run; None where the run has nothing to derive them from."""

    test_accuracy: float | None
    test_loss: float | None
    first_epoch_seconds: float | None
    steady_epochs: int
    median_epoch_seconds: float | None
    best_epoch_seconds: float | None
    median_samples_per_second: float | None
    best_samples_per_second: float | None
    achieved_flops: float | None
    """Training FLOP/s in the fastest steady epoch."""
    efficiency: float | None
    """`achieved_flops` as a fraction of the same process's matmul peak."""
    train_seconds_total: float
    eval_seconds_total: float
    peak_rss_mb: float | None
    peak_device_memory_mb: float | None


GATED = ("test_accuracy", "test_loss", "efficiency", "best_samples_per_second")
"""The metrics a baseline stores per architecture."""


def of(record: RunRecord) -> RunMetrics:
    """Derive a run's figures from its raw measurements."""
    first = [e.train_seconds for e in record.epochs if e.compiled]
    steady = [e.train_seconds for e in record.epochs if not e.compiled]
    samples = record.config.train_samples
    median = statistics.median(steady) if steady else None
    best = min(steady) if steady else None
    timing = record.timing
    achieved = timing.training_flops_per_sample * samples / best if timing and best else None
    return RunMetrics(
        test_accuracy=record.final.test_accuracy if record.final else None,
        test_loss=record.final.test_loss if record.final else None,
        first_epoch_seconds=first[0] if first else None,
        steady_epochs=len(steady),
        median_epoch_seconds=median,
        best_epoch_seconds=best,
        median_samples_per_second=samples / median if median else None,
        best_samples_per_second=samples / best if best else None,
        achieved_flops=achieved,
        efficiency=achieved / timing.peak_flops if achieved and timing else None,
        train_seconds_total=sum(e.train_seconds for e in record.epochs),
        eval_seconds_total=sum(e.eval_seconds for e in record.epochs),
        peak_rss_mb=timing.peak_rss_mb if timing else None,
        peak_device_memory_mb=timing.peak_device_memory_mb if timing else None,
    )
