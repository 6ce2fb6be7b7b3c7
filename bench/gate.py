"""The regression gate: one workflow, used by `pytest bench` and `python -m bench gate`.

`Gate(root, mode).check(record)` finds the run's baseline (the exact key, else the closest:
`bench.storage.baselines.resolve`), compares the run's derived metrics
(`bench.measurement.metrics`) with the bands of `bench.storage.baselines.Tolerance`, and
remembers the checks, the baselines it chose and what the comparisons cross (device, library
versions); `summary()` is the table both front ends print. The bands:

* accuracy: fail below ``mean - max(k * sd, floor)`` of the baseline's seeds (k = 3,
  floor = 0.01): k * sd lets an honest rerun with another seed pass, the floor keeps a band
  from collapsing when a few seeds agree;
* loss: fail above ``mean + max(k * sd, floor_rel * mean)`` (floor_rel = 0.25);
* speed (`mode="all"`), only against a baseline of this run's own device class (across
  devices a stored band cannot be both tight and safe: `python -m bench compare` measures
  speed on the runner instead), and not for a run that shared its machine with other runs of
  a study, nor against a baseline whose runs all did (the summary says which and why): the
  steady step time (`metrics.STEP_CLOCK`) fails above ``mean + max(k * sd, floor * mean)``
  over the baseline's seeds (k = 3, floor = 0.05), and beside it the run's training seconds
  and evaluation seconds (`metrics.TIMES`, baselines v6), each failing above
  ``mean + max(k * sd, floor * mean)`` (k = 3, floor = 0.05): a stall in a few steps or a
  slower evaluation leaves the typical step as it was; a baseline without per-step timings
  (version 4 and older) falls back to efficiency, failing below ``min * (1 - 0.25)``;
* epochs to the budget's target accuracy (when the baseline's seeds all reached it): fail
  above ``max * (1 + target_margin)`` (0.5) or when not reached: a change that trains faster
  per step but needs more epochs fails here (MLPerf's and AlgoPerf's time-to-accuracy).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from bench.measurement import metrics
from bench.storage.baselines import BaselineError, Key, Resolved, resolve
from bench.storage.records import RunRecord
from bench.training.budgets import name_mismatch

MODES = ("all", "accuracy", "off")
"""What to gate: accuracy and speed, accuracy only, or nothing."""


@dataclass(frozen=True)
class Check:
    """One gated comparison: a metric of one run against its band."""

    arch_id: str
    metric: str
    observed: float | None
    mean: float
    bound: float
    direction: str  # "min": observed must be >= bound; "max": observed must be <= bound
    baseline: str
    seed: int | None = None

    @property
    def passed(self) -> bool:
        """Whether the observed value lies inside the band (a missing value fails)."""
        if self.observed is None or not math.isfinite(self.observed):
            return False
        return (
            self.observed >= self.bound if self.direction == "min" else self.observed <= self.bound
        )

    @property
    def relative(self) -> float | None:
        """Signed relative difference of observed against the baseline mean."""
        if self.observed is None or self.mean == 0:
            return None
        return (self.observed - self.mean) / abs(self.mean)

    def message(self) -> str:
        """Say what moved: architecture, metric, observed, band, signed change, baseline file."""
        band = f">= {self.bound:.4f}" if self.direction == "min" else f"<= {self.bound:.4f}"
        change = f"{self.relative:+.1%}" if self.relative is not None else "n/a"
        observed = "missing" if self.observed is None else f"{self.observed:.4f}"
        verdict = "ok" if self.passed else "REGRESSION"
        run = f" (seed {self.seed})" if self.seed is not None else ""
        return (
            f"{verdict}: {self.arch_id}{run} {self.metric} = {observed} (band {band}; baseline "
            f"mean {self.mean:.4f}, {change}) [{self.baseline}]"
        )


def compare(record: RunRecord, resolved: Resolved, *, speed: bool = True) -> list[Check]:
    """Compare one run with its architecture's entry in a baseline."""
    arch_id, baseline, origin = record.arch.id, resolved.baseline, str(resolved.path)
    if arch_id not in baseline.archs:
        raise BaselineError(f"{origin} has no entry for {arch_id}.")
    entry, tolerance = baseline.archs[arch_id], baseline.tolerance_for(arch_id)
    observed, seed = metrics.of(record), record.config.seed
    speed = speed and not record.shared_machine
    checks = [
        Check(arch_id, "test_accuracy", observed.test_accuracy, entry.test_accuracy.mean,
              tolerance.lowest_accuracy(entry.test_accuracy), "min", origin, seed),
        Check(arch_id, "test_loss", observed.test_loss, entry.test_loss.mean,
              tolerance.highest_loss(entry.test_loss), "max", origin, seed),
    ]  # fmt: skip
    step = entry.stats(metrics.STEP_CLOCK)
    if speed and step is not None:
        checks.append(
            Check(arch_id, metrics.STEP_CLOCK, getattr(observed, metrics.STEP_CLOCK), step.mean,
                  tolerance.slowest_step(step), "max", origin, seed)
        )  # fmt: skip
        for metric in metrics.TIMES:
            seconds = entry.stats(metric)
            if seconds is not None:
                bound = tolerance.slowest_time(seconds)
                checks.append(Check(arch_id, metric, getattr(observed, metric), seconds.mean,
                                    bound, "max", origin, seed))  # fmt: skip
    elif speed and entry.efficiency is not None:
        checks.append(
            Check(arch_id, "efficiency", observed.efficiency, entry.efficiency.mean,
                  tolerance.lowest_efficiency(entry.efficiency), "min", origin, seed)
        )  # fmt: skip
    if entry.epochs_to_target is not None:
        # Machine-independent, so gated with accuracy: not reached, or not measured (a record
        # without time to target), counts as missing.
        checks.append(
            Check(arch_id, "epochs_to_target", observed.epochs_to_target,
                  entry.epochs_to_target.mean, tolerance.latest_target(entry.epochs_to_target),
                  "max", origin, seed)
        )  # fmt: skip
    return checks


def table(checks: list[Check]) -> str:
    """Return a table of checks: what moved, by how much, and the verdict; failures first."""
    rows = [
        [c.arch_id, c.seed, c.metric, c.observed, c.mean,
         ("≥ " if c.direction == "min" else "≤ ") + f"{c.bound:.4f}",
         f"{c.relative:+.1%}" if c.relative is not None else "n/a",
         "ok" if c.passed else "REGRESSION"]
        for c in sorted(checks, key=lambda c: c.passed)
    ]  # fmt: skip
    headers = ["arch", "seed", "metric", "observed", "baseline mean", "band", "change", "verdict"]
    return tabulate(rows, headers=headers, floatfmt=".4f")


@dataclass
class Gate:
    """The gate over a session's runs: check each, then print one summary.

    Args:
        root: the measured-baselines folder.
        mode: one of MODES.
        regen_hint: the command that would create a missing baseline for these runs, with
            the options of the run that needs it (`{budget}` is filled in).
    """

    root: Path
    mode: str = "all"
    regen_hint: str = "python -m bench baseline RECORD.json ... (records of 2+ seeds)"
    checks: list[Check] = field(default_factory=list)
    chosen: dict[str, str] = field(default_factory=dict)
    commits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    crossings: set[str] = field(default_factory=set)
    unchecked: list[str] = field(default_factory=list)
    """Speed checks left out, and why."""
    _resolved: dict[tuple[Key, tuple[tuple[str, str], ...]], Resolved] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"gate mode {self.mode!r}; valid: {', '.join(MODES)}")

    def require(self, key: Key, versions: dict[str, str]) -> Resolved:
        """Return the baseline for runs of `key`; BaselineError saying how to make one.

        Called before training too, so that a missing baseline fails in seconds, not after
        the run.
        """
        cache_key = (key, tuple(sorted(versions.items())))
        if cache_key in self._resolved:  # one read per baseline, not one per run and check
            return self._resolved[cache_key]
        try:
            self._resolved[cache_key] = resolve(key, versions, self.root)
            return self._resolved[cache_key]
        except BaselineError as error:
            hint = self.regen_hint.format(budget=key.budget)
            raise BaselineError(f"{error}\nCreate it on this machine:\n  {hint}") from None

    def check(self, record: RunRecord) -> list[Check]:
        """Check one run against its baseline; return (and keep) its checks.

        Raises BaselineError, saying how to create the baseline, when none fits.
        """
        if self.mode == "off":
            return []
        budget = record.config.budget
        wrong = name_mismatch(budget.name, budget.epochs, budget.train_samples,
                              budget.test_samples)  # fmt: skip
        if wrong:
            raise BaselineError(f"{record.label}: {wrong}; it cannot be judged against the "
                                f"baselines of {budget.name!r}")  # fmt: skip
        resolved = self.require(Key.of(record), record.provenance.versions)
        self.chosen[str(resolved.path)] = resolved.reason
        self.commits[str(resolved.path)] = resolved.baseline.provenance.git_commits
        self.crossings.update(resolved.crossings)
        speed = self.mode == "all"
        other_device = [c for c in resolved.crossings if c.startswith("device:")]
        if speed and record.shared_machine:
            self.unchecked.append(f"{record.label}: speed not gated (it shared its machine with "
                                  f"{record.provenance.concurrent_runs} other run(s))")  # fmt: skip
            speed = False
        elif speed and other_device:
            self.unchecked.append(f"{record.label}: speed not gated against a baseline of "
                                  f"another device ({other_device[0][8:]}); `python -m bench "
                                  "compare` measures speed on this runner")  # fmt: skip
            speed = False
        elif (
            speed
            and resolved.baseline.archs.get(record.arch.id, None) is not None
            and (resolved.baseline.archs[record.arch.id].efficiency is None)
        ):
            self.unchecked.append(f"{record.label}: speed not gated (the baseline has no "
                                  "timings: its runs shared their machines)")  # fmt: skip
        checks = compare(record, resolved, speed=speed)
        self.checks.extend(checks)
        return checks

    @property
    def failed(self) -> list[Check]:
        """The checks that failed so far."""
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """Return the table, the baselines chosen and why, crossings, and the count."""
        lines = [table(self.checks)] if self.checks else []
        lines += [f"baseline: {path} ({why})" for path, why in sorted(self.chosen.items())]
        lines += [f"NOTE: comparison crosses {c}" for c in sorted(self.crossings)]
        lines += [f"NOTE: {why}" for why in self.unchecked]
        lines.append(f"{len(self.failed)} regression(s) in {len(self.checks)} checks")
        return "\n".join(lines)

    def markdown(self, title: str = "cnnbench regression gate") -> str:
        """Return the summary as GitHub-flavoured Markdown, failing rows first.

        For a CI job summary (`$GITHUB_STEP_SUMMARY`) or a pull-request comment: a verdict
        line, one table row per check with its signed change, and the baseline (file and
        the commits it was measured at) each row was judged against.
        """
        verdict = "❌ failed" if self.failed else "✅ passed"
        lines = [f"### {title}: {verdict}", "",
                 f"{len(self.failed)} regression(s) in {len(self.checks)} checks.", ""]  # fmt: skip
        if self.checks:
            lines += [
                "| verdict | arch | seed | metric | observed | baseline mean | band | change "
                "| judged against |",
                "|---|---|---|---|---:|---:|---|---:|---|",
            ]
            for c in sorted(self.checks, key=lambda c: c.passed):
                observed = "missing" if c.observed is None else f"{c.observed:.4f}"
                change = f"{c.relative:+.1%}" if c.relative is not None else "n/a"
                band = ("≥ " if c.direction == "min" else "≤ ") + f"{c.bound:.4f}"
                commits = ", ".join(dict.fromkeys(  # short hashes; "+" marks uncommitted changes
                    commit[:7] + ("+" if commit.endswith("-dirty") else "")
                    for commit in self.commits.get(c.baseline, ())))  # fmt: skip
                against = f"`{Path(c.baseline).name}`" + (f" @ {commits}" if commits else "")
                lines.append(
                    f"| {'ok' if c.passed else '**REGRESSION**'} | {c.arch_id} | {c.seed} | "
                    f"{c.metric} | {observed} | {c.mean:.4f} | {band} | {change} | {against} |"
                )
        notes = [f"Baseline `{path}`: {why}." for path, why in sorted(self.chosen.items())]
        notes += [f"Comparison crosses {crossing}." for crossing in sorted(self.crossings)]
        notes += [f"{why}." for why in self.unchecked]
        if notes:
            lines += ["", *[f"- {note}" for note in notes]]
        return "\n".join(lines) + "\n"

    def write_markdown(self, path: Path | None) -> Path | None:
        """Append the Markdown summary to `path`, else to $GITHUB_STEP_SUMMARY when set.

        Raises SummaryError (`append_summary`).
        """
        return append_summary(path, self.markdown())


class SummaryError(OSError):
    """The Markdown summary could not be written; the verdict it summarises stands."""


def append_summary(path: Path | None, markdown: str) -> Path | None:
    """Append Markdown to `path`, else to $GITHUB_STEP_SUMMARY when set; return where.

    Raises SummaryError naming the file when it cannot be written (a folder, no space, no
    permission): the callers say so and keep the verdict's exit status.
    """
    target = path or (Path(os.environ["GITHUB_STEP_SUMMARY"])
                      if os.environ.get("GITHUB_STEP_SUMMARY") else None)  # fmt: skip
    if target is None:
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as handle:  # GitHub's summary file appends
            handle.write(markdown + "\n")
    except OSError as error:
        raise SummaryError(f"could not append the Markdown summary to {target} "
                           f"({error.strerror or error}); the verdict above stands"
                           ) from None  # fmt: skip
    return target
