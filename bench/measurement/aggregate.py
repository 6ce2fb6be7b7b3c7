"""Making a baseline from runs: aggregation, what changed, and the atomic regeneration.

Above `bench.storage.baselines` (the typed file, its loader and lookup) because it derives
each run's figures (`bench.measurement.metrics`) and writes the bands in words
(`bench.measurement.bands`). Speed statistics come only from runs that had their machine to
themselves (a study's runs that shared a machine keep their accuracy but not their timings);
an architecture with no such run has no speed statistics, and the gate then does not check
its speed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from bench.budgets import name_mismatch
from bench.measurement import bands, metrics
from bench.storage.atomic import set_aside
from bench.storage.baselines import (
    MIN_SEEDS,
    ArchEntry,
    Baseline,
    BaselineError,
    BaselineProvenance,
    Key,
    MetricStats,
    Origin,
    Tolerance,
    load,
    save,
)
from bench.storage.records import Config, RunRecord


def aggregate(runs: Sequence[RunRecord], tolerance: Tolerance | None = None) -> Baseline:
    """Build a baseline from completed runs that share one key (MIN_SEEDS+ seeds each)."""
    if not runs:
        raise BaselineError("no run records to aggregate")
    keys = sorted({str(Key.of(run)) for run in runs})
    if len(keys) > 1:
        raise BaselineError(
            f"the records belong to {len(keys)} different baselines ({'; '.join(keys)}); "
            "give the records of one budget, backend, precision and device at a time"
        )
    planted = sorted({run.label for run in runs if run.config.plant != "none"})
    if planted:
        raise BaselineError(f"runs with a planted regression never make a baseline: {planted}")
    configs = {dataclasses.replace(run.config, seed=0) for run in runs}
    if len(configs) > 1:
        fields = sorted({f.name for f in dataclasses.fields(Config)
                         if len({getattr(c, f.name) for c in configs}) > 1})  # fmt: skip
        raise BaselineError(f"the records were trained with {len(configs)} configurations "
                            f"(they differ in {', '.join(fields)}); one baseline is made from "
                            "runs that differ only in their seed")  # fmt: skip
    budget = runs[0].config.budget
    wrong = name_mismatch(budget.name, budget.epochs, budget.train_samples, budget.test_samples)
    if wrong:
        raise BaselineError(f"{runs[0].label}: {wrong}; not a baseline of {budget.name!r}")
    unfinished = sorted({run.label for run in runs if not run.completed})
    if unfinished:
        raise BaselineError(f"only completed runs make a baseline; not completed: {unfinished}")
    by_arch: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_arch.setdefault(run.arch.id, []).append(run)
    archs = {}
    for arch_id, group in by_arch.items():
        seeds = tuple(run.config.seed for run in group)
        if len(set(seeds)) != len(seeds):
            raise BaselineError(f"{arch_id}: the same seed appears twice: {list(seeds)}")
        if len(seeds) < MIN_SEEDS:
            raise BaselineError(
                f"{arch_id}: {len(seeds)} seed(s) ({list(seeds)}); a baseline needs at least "
                f"{MIN_SEEDS} per architecture (5 recommended) so that its band has a spread"
            )
        derived = [metrics.of(run) for run in group]
        alone = [metrics.of(run) for run in group if not run.shared_machine]
        stats: dict[str, MetricStats | None] = {}
        for metric in metrics.GATED:
            speed = metric in metrics.SPEED
            values = [getattr(d, metric) for d in (alone if speed else derived)]
            if any(v is None for v in values):
                raise BaselineError(f"{arch_id}: some runs lack {metric} (no steady epoch?)")
            stats[metric] = MetricStats.of([float(v) for v in values]) if values else None
        for metric, among in (("epochs_to_target", derived), ("seconds_to_target", derived),
                              *((m, alone) for m in (*metrics.STEP, *metrics.TIMES))):  # fmt: skip
            values = [getattr(d, metric) for d in among]
            if values and all(v is not None for v in values):
                stats[metric] = MetricStats.of([float(v) for v in values if v is not None])
        archs[arch_id] = ArchEntry(seeds=seeds, provenance=Origin.of(group), **stats)
    tolerance = tolerance or Tolerance()
    first, origin = runs[0].provenance, Origin.of(runs)
    return Baseline(
        key=Key.of(runs[0]),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        tolerance=tolerance,
        band_rule=bands.describe(tolerance),
        provenance=BaselineProvenance(
            origin.git_commits, origin.commands, origin.runs_started, first.versions, first.device
        ),
        archs=archs,
    )


def diff(old: Baseline | None, new: Baseline) -> str:
    """Say what a regenerated baseline changes against the old one (means, per metric)."""
    if old is None:
        return "new baseline (there was none before)"
    rows = []
    for arch_id, entry in new.archs.items():
        for metric in (*metrics.GATED, *metrics.STEP, *metrics.TIMES):
            was = old.archs[arch_id].stats(metric) if arch_id in old.archs else None
            now = entry.stats(metric)
            before, after = (s.mean if s else None for s in (was, now))
            change = (f"{(after - before) / abs(before):+.2%}" if before and after is not None
                      else "new" if after is not None else "not kept (shared machine)")  # fmt: skip
            rows.append([arch_id, metric, before, after, change])
    return tabulate(
        rows, headers=["arch", "metric", "old mean", "new mean", "change"], floatfmt=".4f"
    )


def regenerate(
    runs: Sequence[RunRecord], root: Path, *, allow_fewer_seeds: bool = False
) -> tuple[Path, str]:
    """Aggregate `runs` into their baseline file (atomically); return it and what changed.

    Architectures not among `runs` keep their entries when the old file was measured with
    the same library versions and device; otherwise, since entries from different versions
    must not sit under one provenance, the file is replaced whole when `runs` cover every
    architecture it holds, and refused (BaselineError, the file untouched) when they do not.
    Per-architecture tolerance overrides are kept. An entry is never replaced by one of fewer
    seeds unless `allow_fewer_seeds`; the old file stays whole until the new one is written.
    """
    new = aggregate(runs)
    path = new.key.path(root)
    note = ""
    try:
        old = load(path) if path.exists() else None
    except BaselineError as error:  # unreadable: kept aside, never in the way of the new one
        note = f"the old file could not be read and was moved aside to {set_aside(path)}: {error}\n"
        old = None
    if old is not None:
        fewer = [
            f"{arch_id} ({len(old.archs[arch_id].seeds)} -> {len(entry.seeds)} seeds)"
            for arch_id, entry in new.archs.items()
            if arch_id in old.archs and len(entry.seeds) < len(old.archs[arch_id].seeds)
        ]
        if fewer and not allow_fewer_seeds:
            raise BaselineError(
                f"{path}: would replace entries with fewer seeds: {', '.join(fewer)}. Run more "
                "seeds, or pass --allow-fewer-seeds to replace them anyway."
            )
        archs = {
            arch_id: dataclasses.replace(entry, tolerance=old.archs[arch_id].tolerance)
            if arch_id in old.archs
            else entry
            for arch_id, entry in new.archs.items()
        }
        same = (old.provenance.versions, old.provenance.device) == (
            new.provenance.versions,
            new.provenance.device,
        )
        left = sorted(set(old.archs) - set(archs))
        if same:
            archs = {a: e for a, e in old.archs.items() if a not in archs} | archs
        elif left:
            raise BaselineError(
                f"{path} also holds {', '.join(left)}, measured with other library versions or "
                "on another device; one baseline has one provenance, so regenerating only "
                f"{', '.join(sorted(archs))} would drop them. Regenerate them too (give their "
                f"records from these versions), or move {path} away to start a new baseline."
            )
        else:
            note = "replaced whole: library versions or device differ from the old baseline\n"
        new = dataclasses.replace(new, archs=archs)
    save(new, path)
    return path, note + diff(old, new)
