"""How long a study should take on this machine, said before it starts.

A run costs its fixed start-up (a fresh process importing the backend, loading the data and
probing the matmul peaks after training) plus its epochs: training FLOPs per sample
(`bench.measurement.flops`) x samples x epochs, and the test-set evaluations' forward FLOPs,
each divided by the matmul peak this machine shows times the efficiency that architecture
reached in the stored baseline of the same precision (efficiency travels across machines far
better than seconds do: `bench.gate`). `probe` measures the start-up, the peaks and the FLOP
counts in one short process (`bench.study.worker.probe`), so the driver stays Keras-free.

Two constants come from measurement: a typical epoch is slower than the best one the
baselines' efficiency comes from (`TYPICAL_OVER_BEST`), and the first epoch traces and
compiles (`COMPILE_SECONDS`); both were read off runs on this project's two machine kinds
(README, "The study").
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.study.plan import RunSpec

TYPICAL_OVER_BEST = 0.8
"""A typical (median) epoch's speed over the fastest epoch's, on these shared machines."""
COMPILE_SECONDS = 2.0
"""What the first epoch's tracing and compilation add, per run."""
EVAL_EFFICIENCY_FACTOR = 0.5
"""Evaluation runs forward passes in batches of 1,024, at about half the training efficiency."""
DEFAULT_EFFICIENCY = 0.3
"""For an architecture no stored baseline covers (a guess, said as such)."""
COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float32"}


@dataclass(frozen=True)
class Probe:
    """What one short process measured: start-up seconds, peaks, FLOPs, `auto`'s policy."""

    startup_seconds: float
    peaks: dict[str, float]
    flops: dict[str, dict[str, int]]
    auto_precision: str


def probe(backend: str, archs: Sequence[str]) -> Probe:
    """Measure start-up, peaks and FLOP counts in a fresh process, as a run would see them."""
    found = subprocess.run(
        [sys.executable, "-m", "bench.study.worker", "--probe", backend, *archs],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if found.returncode != 0:
        tail = (found.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the estimate's probe failed: {tail}")
    data = json.loads(found.stdout.strip().splitlines()[-1])
    return Probe(data["startup_seconds"], data["peaks"], data["flops"], data["auto_precision"])


def efficiencies(backend: str, precision: str) -> dict[str, float]:
    """Return each architecture's mean efficiency in the stored ci baselines of `precision`."""
    from bench.storage import baselines, layout

    found: dict[str, float] = {}
    for path in layout.baseline_files(layout.default_baselines(), "ci"):
        try:
            baseline = baselines.load(path)
        except baselines.BaselineError:
            continue
        if (baseline.key.backend, baseline.key.precision) != (backend, precision):
            continue
        for arch_id, entry in baseline.archs.items():
            if entry.efficiency is not None:
                found.setdefault(arch_id, entry.efficiency.mean)
    return found


@dataclass(frozen=True)
class Estimate:
    """Seconds per run, and which architectures' efficiencies were guessed."""

    seconds: dict[RunSpec, float]
    guessed: tuple[str, ...]

    def of(self, runs: Sequence[RunSpec]) -> Estimate:
        """Return the estimate of these runs only."""
        return Estimate({r: self.seconds[r] for r in runs}, self.guessed)

    @property
    def total(self) -> float:
        """All runs one after another."""
        return sum(self.seconds.values())


def estimate(
    runs: Sequence[RunSpec], found: Probe, trained: Mapping[RunSpec, int] | None = None
) -> Estimate:
    """Return the expected seconds of each run on the probed machine.

    `trained` gives the epochs a run's folder already holds: a resumed run costs only the
    epochs it has left, a completed one (kept) only its start-up.
    """
    guessed: set[str] = set()
    per_precision: dict[str, dict[str, float]] = {}
    seconds = {}
    for spec in runs:
        precision = found.auto_precision if spec.precision == "auto" else spec.precision
        if precision not in per_precision:
            per_precision[precision] = efficiencies(spec.backend, precision)
        efficiency = per_precision[precision].get(spec.arch)
        if efficiency is None:
            guessed.add(spec.arch)
            efficiency = DEFAULT_EFFICIENCY
        peak = found.peaks[COMPUTE_DTYPE[precision]] * efficiency * TYPICAL_OVER_BEST
        budget = spec.resolved_budget()
        train_n = min(budget.train_samples or 60_000, 60_000)
        test_n = min(budget.test_samples or 10_000, 10_000)
        flops = found.flops[spec.arch]
        left = budget.epochs - min((trained or {}).get(spec, 0), budget.epochs)
        if left == 0:
            seconds[spec] = found.startup_seconds
            continue
        train = flops["training"] * train_n * left / peak
        evaluate = flops["forward"] * test_n * (left + 1) / (peak * EVAL_EFFICIENCY_FACTOR)
        seconds[spec] = found.startup_seconds + COMPILE_SECONDS + train + evaluate
    return Estimate(seconds, tuple(sorted(guessed)))


def clock(seconds: float) -> str:
    """Return seconds as 1h02m, 12m30s or 45s."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
