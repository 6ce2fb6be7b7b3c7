"""How long a study should take on this machine, said before it starts.

One short probe (`bench.study.worker.probe`, a fresh process like a run's) measures what a
run costs here: the process's start-up (the interpreter, importing the backend, loading the
data), what a run adds beyond its steps (one tiny real run of 3 epochs of 2 steps: building,
each epoch's `fit` set-up and teardown and checkpoint, the measurements after the run), and
per architecture and precision, a steady training step of batch 128, the first step's
tracing and compilation, and an evaluation batch of 1,024. A run's estimate is then
start-up + the run's extra + compilation + its steps + its evaluations. Measuring
beats deriving the time from FLOPs and a stored efficiency: efficiency measured against the
bfloat16 peak differs several-fold between CPUs with and without AMX, so it does not
travel between the machine kinds this project runs on. The probe costs a few seconds per
architecture (about 20 s for the six on a 2-core machine).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.budgets import BATCH_SIZE, EVAL_BATCH_SIZE
from bench.storage.records import Device
from bench.study.plan import RunSpec


@dataclass(frozen=True)
class Cost:
    """What one architecture costs here in one precision, in seconds."""

    step: float
    """A steady training step of batch 128."""
    compile: float
    """What the first step adds (tracing and compilation)."""
    eval_batch: float
    """An evaluation batch of 1,024."""


@dataclass(frozen=True)
class Probe:
    """What the probe measured: start-up seconds, matmul peaks, and costs per arch."""

    startup_seconds: float
    """A run's process before it trains: the interpreter, importing the backend, the data."""
    run_seconds: float
    """What a run adds beyond its steps, evaluations and compilation: building, each epoch's
    `fit` set-up and teardown and checkpoint, the measurements after it, saving."""
    peaks: dict[str, float]
    costs: dict[str, dict[str, Cost]]
    """Precision as asked (`auto` too) -> architecture -> cost."""
    seconds: float
    """How long the probe itself took."""
    precisions: dict[str, str]
    """Each precision asked for, resolved as a run here would (`auto` -> a policy)."""
    device: Device
    versions: dict[str, str]
    """What a run here would record: its device and library versions (for the gate)."""


def probe(backend: str, archs: Sequence[str], precisions: Sequence[str]) -> Probe:
    """Measure start-up, peaks and each architecture's costs in a fresh process."""
    began = time.perf_counter()
    found = subprocess.run(
        [sys.executable, "-m", "bench.study.worker", "--probe", backend, ",".join(precisions),
         *archs],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - began
    if found.returncode != 0:
        tail = (found.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the estimate's probe failed: {tail}")
    data = json.loads(found.stdout.strip().splitlines()[-1])
    costs = {precision: {arch: Cost(**cost) for arch, cost in by_arch.items()}
             for precision, by_arch in data["costs"].items()}  # fmt: skip
    process = max(wall - data["seconds"], 0.0)  # the interpreter's start and exit
    return Probe(data["startup_seconds"] + process, data["run_seconds"], data["peaks"], costs,
                 wall, data["precisions"], Device(**data["device"]), data["versions"])  # fmt: skip


@dataclass(frozen=True)
class Estimate:
    """Expected seconds per run."""

    seconds: dict[RunSpec, float]

    def of(self, runs: Sequence[RunSpec]) -> Estimate:
        """Return the estimate of these runs only."""
        return Estimate({r: self.seconds[r] for r in runs})

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
    seconds = {}
    for spec in runs:
        budget = spec.resolved_budget()
        left = budget.epochs - min((trained or {}).get(spec, 0), budget.epochs)
        if left == 0:  # kept: the process starts, finds the record, and ends
            seconds[spec] = found.startup_seconds
            continue
        cost = found.costs[spec.precision][spec.arch]
        steps = math.ceil(min(budget.train_samples or 60_000, 60_000) / BATCH_SIZE)
        evals = math.ceil(min(budget.test_samples or 10_000, 10_000) / EVAL_BATCH_SIZE)
        if spec.eval_every:
            evals *= 1 + (steps - 1) // spec.eval_every
        fixed = found.startup_seconds + found.run_seconds + cost.compile
        seconds[spec] = fixed + left * steps * cost.step + (left + 1) * evals * cost.eval_batch
    return Estimate(seconds)


def seeds_that_fit(guess: Estimate, seeds: Sequence[int], seconds: float) -> tuple[int, ...]:
    """Return the longest prefix of `seeds` (at least one) whose runs fit in `seconds`."""
    chosen, spent = [seeds[0]], sum(t for r, t in guess.seconds.items() if r.seed == seeds[0])
    for seed in seeds[1:]:
        spent += sum(t for r, t in guess.seconds.items() if r.seed == seed)
        if spent > seconds:
            break
        chosen.append(seed)
    return tuple(chosen)


def clock(seconds: float) -> str:
    """Return seconds as 1h02m, 12m30s or 45s."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
