"""Every figure derived from a run record, computed here once and named for what it is.

The gate, the benchmark's `extra_info` and the report all read `RunMetrics`, so a name means
the same thing everywhere:

* steady epochs are the epochs that did not trace and compile the train step; steady steps
  are every step but a process's first `WARMUP_STEPS` and a partial last batch;
* `median_*` is over steady epochs (the typical speed), `best_*` is the fastest steady epoch
  (what the code achieves when the shared machine is not throttling it, as
  pytest-benchmark's `min`);
* `efficiency` = training FLOPs per sample x samples / best epoch seconds / the matmul peak
  measured in the same process: comparable across machines of different speeds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.storage.records import RunRecord, TimeToTarget


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
    step_seconds: float | None
    """Median over epochs of each epoch's median steady-step wall seconds (None: not measured)."""
    step_cpu_seconds: float | None
    """The same in process CPU seconds (all threads)."""
    step_efficiency: float | None
    """Training FLOP/s of that median step (batch of `batch_size`) over the matmul peak."""
    train_seconds_total: float
    eval_seconds_total: float
    peak_rss_mb: float | None
    peak_device_memory_mb: float | None
    epochs_to_target: float | None
    """Epochs (fractional with an evaluation interval) to the first evaluation at or above
    the budget's target; None when not reached or when the budget has no target."""
    seconds_to_target: float | None
    """Training seconds to that evaluation (compilation included, evaluation excluded)."""
    seconds_to_target_with_eval: float | None
    """The same, plus every evaluation up to and including that one."""


@dataclass(frozen=True)
class Point:
    """One evaluation of a run, at an epoch end or inside an epoch, with the clocks so far."""

    position: float
    train_seconds: float
    train_and_eval_seconds: float
    val_accuracy: float
    val_loss: float


def evaluation_points(record: RunRecord) -> list[Point]:
    """Return every evaluation of a run in training order, with cumulative clocks."""
    raw = [(e.position, e.train_seconds, e.seconds, e.val_accuracy, e.val_loss)
           for e in record.evaluations]  # fmt: skip
    trained = 0.0
    for epoch in record.epochs:
        trained += epoch.train_seconds
        raw.append((float(epoch.epoch), trained, epoch.eval_seconds, epoch.val_accuracy,
                    epoch.val_loss))  # fmt: skip
    points, evaluated = [], 0.0
    for position, train_seconds, seconds, accuracy, loss in sorted(raw):
        evaluated += seconds
        points.append(Point(position, train_seconds, train_seconds + evaluated, accuracy, loss))
    return points


def time_to_target(record: RunRecord, target: float) -> TimeToTarget:
    """Return when a run first evaluated at or above `target` test accuracy (or not)."""
    for point in evaluation_points(record):
        if point.val_accuracy >= target:
            return TimeToTarget(target, True, point.position, point.train_seconds,
                                point.train_and_eval_seconds)  # fmt: skip
    return TimeToTarget(target, False)


WARMUP_STEPS = 3
"""A process's first training steps, not steady: the first traces and compiles the step, the
next settle memory and caches (the paired comparison and the step clock both leave them out)."""
GATED = ("test_accuracy", "test_loss", "efficiency", "best_samples_per_second")
"""The metrics a baseline stores per architecture."""
SPEED = ("efficiency", "best_samples_per_second")
"""The timings among them: kept only from runs that had their machine to themselves."""
STEP = ("step_seconds", "step_cpu_seconds")
"""Per-step timings a baseline stores when every one of its runs measured them (records v5)."""
TIMES = ("train_seconds_total", "eval_seconds_total")
"""A run's training time (every epoch, compilation included) and evaluation time, the sums the
training clock read (`bench.training.clock`): what a user waits for, gated beside the step, so
that a cost that lands in a few steps or in evaluation cannot pass with the typical step."""
STEP_CLOCK = "step_seconds"
"""The per-step timing the stored-baseline gate checks: the steadier of the two, measured
(README, "The stored-baseline gate")."""


def _median_of(values: list[float | None]) -> float | None:
    return statistics.median(values) if values and None not in values else None  # type: ignore[type-var]


def of(record: RunRecord) -> RunMetrics:
    """Derive a run's figures from its raw measurements."""
    first = [e.train_seconds for e in record.epochs if e.compiled]
    steady = [e.train_seconds for e in record.epochs if not e.compiled]
    samples = record.config.train_samples
    median = statistics.median(steady) if steady else None
    best = min(steady) if steady else None
    timing = record.timing
    step = _median_of([e.step_seconds for e in record.epochs])
    step_flops = timing.training_flops_per_sample * record.config.batch_size if timing else 0.0
    step_efficiency = step_flops / step / timing.peak_flops if timing and step else None
    reached = (
        record.time_to_target if record.time_to_target and record.time_to_target.reached else None
    )
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
        step_seconds=step,
        step_cpu_seconds=_median_of([e.step_cpu_seconds for e in record.epochs]),
        step_efficiency=step_efficiency,
        train_seconds_total=sum(e.train_seconds for e in record.epochs),
        eval_seconds_total=sum(e.eval_seconds for e in record.epochs),
        peak_rss_mb=timing.peak_rss_mb if timing else None,
        peak_device_memory_mb=timing.peak_device_memory_mb if timing else None,
        epochs_to_target=reached.epochs if reached else None,
        seconds_to_target=reached.train_seconds if reached else None,
        seconds_to_target_with_eval=reached.train_and_eval_seconds if reached else None,
    )
