"""Drive a study: say what it will run and how long it should take, run it, say how it went.

The live display is one line, printed when a run starts or ends and every half minute in
between: runs done (and kept), running, failed, and the time left. Time left is the
estimate of what remains (`bench.study.estimate`), scaled by how the finished runs compared
with their own estimates; without an estimate, the finished runs' mean time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tabulate import tabulate

from bench.storage import layout
from bench.study.estimate import Estimate, clock
from bench.study.executors import Outcome
from bench.study.plan import Plan, RunSpec

TICK_SECONDS = 30.0


@dataclass
class StudyProgress:
    """The study's live display (see the module docstring)."""

    plan: Plan
    slots: int = 1
    estimate: Estimate | None = None
    write: Callable[[str], None] = print
    began: float = field(default_factory=time.perf_counter)
    running: dict[RunSpec, float] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    last: float = 0.0

    def started(self, spec: RunSpec) -> None:
        self.running[spec] = time.perf_counter()
        self.show(f"start {spec.label}")

    def finished(self, outcome: Outcome) -> None:
        self.running.pop(outcome.spec, None)
        self.outcomes.append(outcome)
        said = outcome.status + (f" ({outcome.error})" if outcome.error else "")
        retried = f" after {outcome.attempts} attempts" if outcome.attempts > 1 else ""
        self.show(f"{said}{retried}: {outcome.spec.label} in {clock(outcome.seconds)}")

    def tick(self) -> None:
        if time.perf_counter() - self.last >= TICK_SECONDS:
            self.show()

    def left(self) -> float | None:
        """Seconds left: the remaining estimate, scaled by how finished runs compared."""
        done = {o.spec for o in self.outcomes}
        trained = [o for o in self.outcomes if o.status in ("completed", "diverged")]
        now = time.perf_counter()
        if self.estimate is not None:
            expected = sum(self.estimate.seconds[o.spec] for o in trained)
            scale = sum(o.seconds for o in trained) / expected if expected else 1.0
            remaining = sum(
                max(self.estimate.seconds[s] * scale - (now - self.running[s]), 0.0)
                if s in self.running else self.estimate.seconds[s] * scale
                for s in self.plan.runs if s not in done
            )  # fmt: skip
        elif trained:
            mean = sum(o.seconds for o in trained) / len(trained)
            remaining = mean * (len(self.plan.runs) - len(done))
        else:
            return None
        return remaining / max(self.slots, 1)

    def show(self, event: str = "") -> None:
        self.last = time.perf_counter()
        counts = {s: sum(o.status == s for o in self.outcomes)
                  for s in ("completed", "kept", "diverged", "failed")}  # fmt: skip
        left = self.left()
        self.write(
            f"[study] {len(self.outcomes)}/{len(self.plan.runs)} done ({counts['kept']} kept), "
            f"{len(self.running)} running, {counts['failed'] + counts['diverged']} failed; "
            f"{clock(time.perf_counter() - self.began)} so far"
            + (f", ~{clock(left)} left" if left is not None else "")
            + (f" | {event}" if event else "")
        )


def run_study(plan: Plan, executor: object, results: layout.Results,
              estimate: Estimate | None = None,
              write: Callable[[str], None] = print) -> list[Outcome]:  # fmt: skip
    """Run every run of `plan` on `executor`; return the outcomes, in the plan's order."""
    progress = StudyProgress(plan, getattr(executor, "slots", 1), estimate, write)
    outcomes = executor.run(plan.runs, results, progress)  # type: ignore[attr-defined]
    progress.show("study finished")
    return outcomes


def table(outcomes: Sequence[Outcome], estimate: Estimate | None = None) -> str:
    """Return a table of the study's runs: status, accuracy, time, estimate, error."""
    from bench.measurement import metrics

    rows = []
    for o in outcomes:
        derived = metrics.of(o.record) if o.record else None
        shared = o.record.provenance.concurrent_runs if o.record else None
        rows.append([
            o.spec.arch, o.spec.seed, o.record.config.precision if o.record else o.spec.precision,
            o.status, derived.test_accuracy if derived else None,
            derived.train_seconds_total if derived else None,
            o.seconds, estimate.seconds[o.spec] if estimate else None,
            shared, o.attempts, o.error or "",
        ])  # fmt: skip
    headers = ["arch", "seed", "precision", "status", "test acc", "train s", "wall s",
               "estimated s", "shared with", "attempts", "error"]  # fmt: skip
    digits = ("", "", "", "", ".4f", ".1f", ".1f", ".1f", "", "", "")  # accuracy 4, seconds 1
    return tabulate(rows, headers=headers, floatfmt=digits)
