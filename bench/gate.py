"""The regression gate: one workflow, used by `pytest bench` and `python -m bench gate`.

`Gate(root, mode).check(record)` finds the run's baseline (the exact key, else the closest:
`bench.storage.baselines.resolve`), compares the run's derived metrics
(`bench.measurement.metrics`) with the bands that apply (`bench.measurement.bands`, where
each band, its formula and why are said once), and remembers the checks, the baselines it
chose and what the comparisons cross (device, library versions). Whether speed is gated for
a run is decided here, once (`Gate.check`): only with `mode="all"`, against a baseline of the
run's own device class, for a run that had its machine to itself. `summary()` and
`markdown()` are the tables both front ends print, from one row model (`Check.cells`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from bench.budgets import name_mismatch
from bench.measurement import bands, metrics
from bench.storage.baselines import BaselineError, Key, Resolved, resolve
from bench.storage.records import RunRecord
from bench.vocabulary import GATE_MODES

MODES = GATE_MODES


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

    def cells(self, ascii_band: bool = False) -> list[str]:
        """Return the row as the tables show it (`HEADERS`), every figure formatted once.

        The band reads `≥ 0.94` in the tables, `>= 0.94` in the one-line message.
        """
        above, below = (">= ", "<= ") if ascii_band else ("≥ ", "≤ ")
        return [
            "ok" if self.passed else "REGRESSION", self.arch_id,
            "" if self.seed is None else str(self.seed), self.metric,
            "missing" if self.observed is None else f"{self.observed:.4f}", f"{self.mean:.4f}",
            (above if self.direction == "min" else below) + f"{self.bound:.4f}",
            f"{self.relative:+.1%}" if self.relative is not None else "n/a",
        ]  # fmt: skip

    def message(self) -> str:
        """Say what moved: architecture, metric, observed, band, signed change, baseline file."""
        verdict, arch, seed, metric, observed, mean, band, change = self.cells(ascii_band=True)
        run = f" (seed {seed})" if seed else ""
        return (f"{verdict}: {arch}{run} {metric} = {observed} (band {band}; baseline mean "
                f"{mean}, {change}) [{self.baseline}]")  # fmt: skip


def compare(record: RunRecord, resolved: Resolved, *, speed: bool = True) -> list[Check]:
    """Compare one run with its architecture's entry in a baseline, band by band.

    `speed`: whether speed is gated for this run (decided by `Gate.check`).
    """
    arch_id, baseline, origin = record.arch.id, resolved.baseline, str(resolved.path)
    if arch_id not in baseline.archs:
        raise BaselineError(f"{origin} has no entry for {arch_id}.")
    entry, tolerance = baseline.archs[arch_id], baseline.tolerance_for(arch_id)
    observed, seed = metrics.of(record), record.config.seed
    return [Check(arch_id, band.metric, getattr(observed, band.metric), stats.mean,
                  band.bound(tolerance, stats), band.direction, origin, seed)
            for band, stats in bands.applicable(entry, speed)]  # fmt: skip


HEADERS = ("verdict", "arch", "seed", "metric", "observed", "baseline mean", "band", "change")
"""The columns of both tables (`Check.cells`)."""


def table(checks: list[Check]) -> str:
    """Return a table of checks: what moved, by how much, and the verdict; failures first."""
    rows = [c.cells() for c in sorted(checks, key=lambda c: c.passed)]
    return tabulate(rows, headers=HEADERS, disable_numparse=True)


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
    unchecked: dict[str, list[str]] = field(default_factory=dict)
    """Why speed was not gated -> the runs it applies to (each reason said once)."""
    _resolved: dict[tuple[Key, tuple[tuple[str, str], ...], str | None], Resolved] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"gate mode {self.mode!r}; valid: {', '.join(MODES)}")

    def require(self, key: Key, versions: dict[str, str], arch: str | None = None) -> Resolved:
        """Return the baseline for runs of `key`; BaselineError saying how to make one.

        Called before training too, so that a missing baseline fails in seconds, not after
        the run.
        """
        cache_key = (key, tuple(sorted(versions.items())), arch)
        if cache_key in self._resolved:  # one read per baseline, not one per run and check
            return self._resolved[cache_key]
        try:
            self._resolved[cache_key] = resolve(key, versions, self.root, arch)
            return self._resolved[cache_key]
        except BaselineError as error:
            hint = self.regen_hint.format(budget=key.budget)
            raise BaselineError(f"{error}\nCreate it on this machine:\n  {hint}") from None

    def require_here(self, budget: str, backend: str, precision: str) -> Resolved | None:
        """Return the baseline runs on this machine will be judged by (None with the gate off).

        `precision` is a policy as the user gave it (`auto` is resolved for this machine).
        Raises BaselineError, saying how to make the baseline, when none fits.
        """
        if self.mode == "off":
            return None
        from bench.measurement import provenance
        from bench.training.precisions import resolve as resolve_policy

        device = provenance.device()
        key = Key.on(device, budget, backend, resolve_policy(precision, device.kind))
        return self.require(key, provenance.library_versions())

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
        resolved = self.require(Key.of(record), record.provenance.versions, record.arch.id)
        self.chosen[str(resolved.path)] = resolved.reason
        self.commits[str(resolved.path)] = resolved.baseline.provenance.git_commits
        self.crossings.update(resolved.crossings)
        speed = self.mode == "all"
        other_device = [c for c in resolved.crossings if c.startswith("device:")]
        entry = resolved.baseline.archs.get(record.arch.id)
        why = None
        if speed and record.shared_machine:
            why = (f"speed not gated: the run shared its machine with "
                   f"{record.provenance.concurrent_runs} other run(s)")  # fmt: skip
            speed = False
        elif speed and other_device:
            why = (f"speed not gated against a baseline of another device "
                   f"({other_device[0][8:]}); `python -m bench compare` measures speed on this "
                   "runner")  # fmt: skip
            speed = False
        elif speed and entry is not None and entry.efficiency is None:
            why = "speed not gated: the baseline has no timings (its runs shared their machines)"
        if why:
            self.unchecked.setdefault(why, []).append(record.label)
        checks = compare(record, resolved, speed=speed)
        self.checks.extend(checks)
        return checks

    def notes(self) -> list[str]:
        """Each reason speed was not gated, once, with the runs it applies to."""
        said = []
        for why, runs in self.unchecked.items():
            which = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
            said.append(f"{why} ({len(runs)} run{'s' if len(runs) > 1 else ''}: {which})")
        return said

    @property
    def failed(self) -> list[Check]:
        """The checks that failed so far."""
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """Return the table, the baselines chosen and why, crossings, and the count."""
        lines = [table(self.checks)] if self.checks else []
        lines += [f"baseline: {path} ({why})" for path, why in sorted(self.chosen.items())]
        lines += [f"NOTE: comparison crosses {c}" for c in sorted(self.crossings)]
        lines += [f"NOTE: {note}" for note in self.notes()]
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
            lines += ["| " + " | ".join((*HEADERS, "judged against")) + " |",
                      "|---|---|---|---|---:|---:|---|---:|---|"]  # fmt: skip
            for c in sorted(self.checks, key=lambda c: c.passed):
                cells = c.cells()
                if not c.passed:
                    cells[0] = f"**{cells[0]}**"
                commits = ", ".join(dict.fromkeys(  # short hashes; "+" marks uncommitted changes
                    commit[:7] + ("+" if commit.endswith("-dirty") else "")
                    for commit in self.commits.get(c.baseline, ())))  # fmt: skip
                against = f"`{Path(c.baseline).name}`" + (f" @ {commits}" if commits else "")
                lines.append("| " + " | ".join((*cells, against)) + " |")
        notes = [f"Baseline `{path}`: {why}." for path, why in sorted(self.chosen.items())]
        notes += [f"Comparison crosses {crossing}." for crossing in sorted(self.crossings)]
        notes += [f"{note}." for note in self.notes()]
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
