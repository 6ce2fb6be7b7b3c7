"""Measured baselines: one typed definition, one versioned loader, aggregation and lookup.

A baseline aggregates completed run records that share a key (budget, backend, precision,
device class): per architecture, n, mean, sd, min and max of each gated metric
(`bench.measurement.metrics.GATED`) over its seeds, the band parameters (`Tolerance`) and
provenance.

Speed statistics come only from runs that had their machine to themselves (a study's runs
that shared a machine keep their accuracy but not their timings); an architecture with no
such run has no speed statistics, and the gate then does not check its speed.

Versions: this harness writes version 6. Version 1 (whose best-epoch throughput was called
`samples_per_second`), version 2 (before time-to-target), version 3 (speed statistics
always present), version 4 (before per-step timings) and version 5 (before training and
evaluation seconds) are migrated on load; any other version is refused with the command that
regenerates it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.measurement import metrics
from bench.measurement.stats import describe
from bench.storage import layout, schema
from bench.storage.atomic import set_aside, write_json
from bench.storage.records import MAX_SEED, Config, Device, RunRecord
from bench.storage.schema import SchemaError, bounds, one_of, safe_name
from bench.training.backends import BACKENDS, relevant_libraries
from bench.training.budgets import name_mismatch
from bench.training.precisions import POLICIES

SCHEMA = "cnn-mnist-bench/baseline"
VERSION = 6
MAX_STAT = 1e9
"""No gated figure comes near this (seconds, accuracies, losses, FLOP fractions): a larger one
is crafted, and a band around it could never fail."""
MAX_LOSS = 16.2
"""Cross-entropy of probabilities clipped at 1e-7 (Keras) is at most -ln(1e-7) = 16.12."""
MIN_SEEDS = 2
"""The fewest seeds per architecture a baseline is made from: a band needs a spread."""


class BaselineError(ValueError):
    """A baseline is missing, malformed, of another version, or cannot be made."""


@dataclass(frozen=True)
class Tolerance:
    """The band parameters of the gate's rule (`bench.gate`), each within stated limits.

    * accuracy fails below ``mean - max(k * sd, accuracy_floor)``;
    * loss fails above ``mean + max(k * sd, loss_floor_rel * mean)``;
    * the steady step time (`metrics.STEP_CLOCK`) fails above
      ``mean + max(step_k * sd, step_floor * mean)``;
    * the run's training seconds and evaluation seconds (`metrics.TIMES`) each fail above
      ``mean + max(time_k * sd, time_floor * mean)``;
    * efficiency fails below ``min * (1 - efficiency_margin)`` (baselines without step times);
    * epochs to the budget's target accuracy fail above ``max * (1 + target_margin)`` or when
      the target is not reached (only for baselines whose every seed reached it).
    """

    k: float = field(default=3.0, metadata=bounds(0, 10))
    accuracy_floor: float = field(default=0.01, metadata=bounds(0, 0.5))
    loss_floor_rel: float = field(default=0.25, metadata=bounds(0, 5))
    efficiency_margin: float = field(default=0.25, metadata=bounds(0, 0.9))
    target_margin: float = field(default=0.5, metadata=bounds(0, 10))
    step_k: float = field(default=3.0, metadata=bounds(0, 10))
    step_floor: float = field(default=0.05, metadata=bounds(0, 1))
    time_k: float = field(default=3.0, metadata=bounds(0, 10))
    time_floor: float = field(default=0.05, metadata=bounds(0, 1))

    def describe(self) -> dict[str, str]:
        """Return the band rule, in words, with this tolerance's numbers."""
        return {
            "test_accuracy": f"fail below mean - max({self.k} * sd, {self.accuracy_floor})",
            "test_loss": f"fail above mean + max({self.k} * sd, {self.loss_floor_rel} * mean)",
            "efficiency": f"fail below min * (1 - {self.efficiency_margin}) (only for a "
            "baseline without per-step timings)",
            metrics.STEP_CLOCK: f"fail above mean + max({self.step_k} * sd, {self.step_floor} "
            "* mean) (only on the baseline's own device class)",
            **{
                metric: f"fail above mean + max({self.time_k} * sd, {self.time_floor} * mean) "
                "(only on the baseline's own device class)"
                for metric in metrics.TIMES
            },
            "epochs_to_target": f"fail when not reached, or above max * (1 + "
            f"{self.target_margin}) (only when every baseline seed reached the target)",
        }

    def lowest_accuracy(self, accuracy: MetricStats) -> float:
        """Return the lowest passing test accuracy."""
        return accuracy.mean - max(self.k * accuracy.sd, self.accuracy_floor)

    def highest_loss(self, loss: MetricStats) -> float:
        """Return the highest passing test loss."""
        return loss.mean + max(self.k * loss.sd, self.loss_floor_rel * loss.mean)

    def lowest_efficiency(self, efficiency: MetricStats) -> float:
        """Return the lowest passing efficiency."""
        return efficiency.min * (1 - self.efficiency_margin)

    def slowest_step(self, step: MetricStats) -> float:
        """Return the slowest passing step time."""
        return step.mean + max(self.step_k * step.sd, self.step_floor * step.mean)

    def slowest_time(self, seconds: MetricStats) -> float:
        """Return the longest passing training (or evaluation) time of a run."""
        return seconds.mean + max(self.time_k * seconds.sd, self.time_floor * seconds.mean)

    def latest_target(self, epochs: MetricStats) -> float:
        """Return the most epochs to the target that still pass."""
        return epochs.max * (1 + self.target_margin)

    def patched(self, override: dict[str, float], where: str) -> Tolerance:
        """Return this tolerance with a per-architecture override applied and checked."""
        try:
            return schema.load(Tolerance, dataclasses.asdict(self) | override, where)
        except SchemaError as error:
            raise BaselineError(f"tolerance override: {error}") from None


@dataclass(frozen=True)
class MetricStats:
    """One metric over a baseline's seeds."""

    n: int = field(metadata=bounds(1))
    mean: float
    sd: float = field(metadata=bounds(0))
    min: float
    max: float
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        numbers = (self.mean, self.sd, self.min, self.max, *self.values)
        if not all(math.isfinite(v) and abs(v) <= MAX_STAT for v in numbers):
            raise ValueError(f"values must be finite and at most {MAX_STAT:g} in size")
        slack = 1e-9 * max(1.0, abs(self.max), abs(self.min))  # fmean's rounding
        if not self.min - slack <= self.mean <= self.max + slack:
            raise ValueError(f"min <= mean <= max fails: {self.min}, {self.mean}, {self.max}")
        if self.values:  # what was measured must be what is summarised
            summary = describe(self.values)
            if self.n != summary.n:
                raise ValueError(f"n is {self.n} but {summary.n} values are given")
            for name in ("mean", "sd", "min", "max"):
                if not math.isclose(getattr(self, name), getattr(summary, name),
                                    rel_tol=1e-6, abs_tol=1e-12):  # fmt: skip
                    raise ValueError(f"{name} {getattr(self, name)} is not the {name} of the "
                                     f"values ({getattr(summary, name)})")  # fmt: skip

    @classmethod
    def of(cls, values: Sequence[float]) -> MetricStats:
        """Summarise values measured over seeds."""
        summary = describe(values)
        return cls(summary.n, summary.mean, summary.sd, summary.min, summary.max, summary.values)


@dataclass(frozen=True)
class Origin:
    """Which commits and commands produced some runs, and when they started."""

    git_commits: tuple[str, ...]
    commands: tuple[str, ...]
    runs_started: tuple[str, ...]

    @classmethod
    def of(cls, runs: Sequence[RunRecord]) -> Origin:
        """Collect the origin of `runs`."""
        started = sorted(r.provenance.started_at for r in runs)
        return cls(
            tuple(sorted({str(r.provenance.git_commit) for r in runs})),
            tuple(sorted({r.provenance.command for r in runs})),
            (started[0], started[-1]),
        )


@dataclass(frozen=True)
class ArchEntry:
    """One architecture's statistics, over its seeds."""

    seeds: tuple[int, ...]
    test_accuracy: MetricStats
    test_loss: MetricStats
    efficiency: MetricStats | None
    """None when every run shared its machine with other runs (timings not comparable)."""
    best_samples_per_second: MetricStats | None
    provenance: Origin
    tolerance: dict[str, float] = field(default_factory=dict)
    epochs_to_target: MetricStats | None = None
    """Epochs to the budget's target accuracy, when every seed reached it (else None)."""
    seconds_to_target: MetricStats | None = None
    """Training seconds to the target, likewise (machine-dependent: for reading, not gated)."""
    step_seconds: MetricStats | None = None
    """Steady-step wall seconds, from runs that had their machine to themselves, when all of
    them measured it (records v5); None otherwise."""
    step_cpu_seconds: MetricStats | None = None
    """Steady-step process CPU seconds, likewise."""
    train_seconds_total: MetricStats | None = None
    """A run's training seconds (every epoch, compilation included), from runs that had their
    machine to themselves (baselines v6)."""
    eval_seconds_total: MetricStats | None = None
    """A run's evaluation seconds (one per epoch), likewise."""
    """Per-architecture overrides of the baseline's tolerance (pytest-benchmark users ask for
    thresholds per group)."""

    def __post_init__(self) -> None:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: the same seed appears twice: {list(self.seeds)}")
        if any(not 0 <= seed <= MAX_SEED for seed in self.seeds):
            raise ValueError(f"seeds: each must be in [0, {MAX_SEED}]: {list(self.seeds)}")
        for name in ("test_accuracy", "test_loss"):
            if self.stats(name).n != len(self.seeds):
                raise ValueError(f"{name}: n is {self.stats(name).n} for {len(self.seeds)} seeds")
        if self.test_loss.max > MAX_LOSS:
            raise ValueError(f"test_loss: {self.test_loss.max} exceeds {MAX_LOSS}, the largest "
                             "cross-entropy Keras reports")  # fmt: skip

    def stats(self, metric: str) -> MetricStats | None:
        """Return the statistics of one of `bench.measurement.metrics.GATED` (None: not kept)."""
        return getattr(self, metric)


@dataclass(frozen=True)
class Key:
    """What a baseline is valid for: budget, backend, precision and device class."""

    budget: str = field(metadata=safe_name())
    backend: str = field(metadata=one_of(*BACKENDS))
    device_class: str = field(metadata=safe_name())
    precision: str = field(metadata=one_of(*POLICIES))

    def path(self, root: Path) -> Path:
        """Return this key's baseline file under `root`."""
        return layout.baseline_path(
            root, self.budget, self.backend, self.precision, self.device_class
        )

    @property
    def device_kind(self) -> str:
        """'cpu' or 'gpu'."""
        return self.device_class.split("-", 1)[0]

    @classmethod
    def of(cls, record: RunRecord) -> Key:
        """Return the key a run record belongs to."""
        return cls(
            record.config.budget.name,
            record.provenance.backend,
            device_class(record.provenance.device),
            record.config.precision,
        )

    def __str__(self) -> str:
        return (
            f"budget={self.budget} backend={self.backend} precision={self.precision} "
            f"device={self.device_class}"
        )


@dataclass(frozen=True)
class BaselineProvenance:
    """The library versions and device of a baseline's runs, and their origin."""

    versions: dict[str, str]
    device: Device
    git_commits: tuple[str, ...]
    commands: tuple[str, ...]
    runs_started: tuple[str, ...]


@dataclass(frozen=True)
class Baseline:
    """A measured baseline, as written to `baselines/measured/<budget>/<key>.json`."""

    key: Key
    created_at: str
    tolerance: Tolerance
    band_rule: dict[str, str]
    provenance: BaselineProvenance
    archs: dict[str, ArchEntry]
    schema: str = field(default=SCHEMA, metadata=one_of(SCHEMA))
    version: int = VERSION

    def __post_init__(self) -> None:
        for arch_id, entry in self.archs.items():
            if not schema.SAFE_NAME.match(arch_id):
                raise ValueError(f"archs: {arch_id!r} is not an architecture id")
            self.tolerance_for(arch_id)  # overrides must be valid on load, not at first use
            if entry.test_accuracy.min < 0 or entry.test_accuracy.max > 1:
                raise ValueError(f"archs.{arch_id}.test_accuracy: values outside [0, 1]")
            for metric in ("test_loss", "efficiency", "best_samples_per_second"):
                found = entry.stats(metric)
                if found is not None and found.min < 0:
                    raise ValueError(f"archs.{arch_id}.{metric}: negative values")

    def tolerance_for(self, arch_id: str) -> Tolerance:
        """Return the tolerance for one architecture, with its override applied."""
        return self.tolerance.patched(self.archs[arch_id].tolerance, f"archs.{arch_id}.tolerance")

    def to_json(self) -> dict[str, Any]:
        """Return the baseline as JSON-ready data."""
        return schema.dump(self)


def device_class(device: Device) -> str:
    """Return a filename-safe device class, e.g. 'cpu-intel-xeon-processor'."""
    name = re.sub(r"\((r|tm)\)", "", device.name.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "unknown"
    return f"{device.kind}-{slug}"


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
        band_rule=tolerance.describe(),
        provenance=BaselineProvenance(
            first.versions, first.device, origin.git_commits, origin.commands, origin.runs_started
        ),
        archs=archs,
    )


def _migrate_v1(document: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: `samples_per_second` (best steady epoch) is `best_samples_per_second`."""
    archs = document.get("archs")
    if isinstance(archs, dict):
        archs = {
            arch_id: {("best_samples_per_second" if k == "samples_per_second" else k): v
                      for k, v in entry.items()} if isinstance(entry, dict) else entry
            for arch_id, entry in archs.items()
        }  # fmt: skip
    return dict(document, version=2, archs=archs)


def _migrate_v2(document: dict[str, Any]) -> dict[str, Any]:
    """Version 2 -> 3: time-to-target statistics and their margin are new (absent before)."""
    return dict(document, version=3)


def _migrate_v3(document: dict[str, Any]) -> dict[str, Any]:
    """Version 3 -> 4: speed statistics may be null (every run shared its machine)."""
    return dict(document, version=4)


def _migrate_v4(document: dict[str, Any]) -> dict[str, Any]:
    """Version 4 -> 5: per-step timings and their band are new (absent before)."""
    return dict(document, version=5)


def _migrate_v5(document: dict[str, Any]) -> dict[str, Any]:
    """Version 5 -> 6: training and evaluation seconds and their band are new (absent before)."""
    return dict(document, version=6)


MIGRATIONS = {1: _migrate_v1, 2: _migrate_v2, 3: _migrate_v3, 4: _migrate_v4, 5: _migrate_v5}
REGENERATE = "regenerate it (python -m bench baseline RECORD.json ...)."


def from_json(document: Any, origin: str) -> Baseline:
    """Return a Baseline from parsed JSON (migrating older versions); errors name `origin`."""
    try:
        return schema.load_versioned(Baseline, document, MIGRATIONS, REGENERATE)
    except SchemaError as error:
        raise BaselineError(f"{origin}: {error}") from None


def load(path: Path) -> Baseline:
    """Read and validate a baseline file."""
    document = schema.read_json(path, BaselineError, "baseline")
    return from_json(document, str(path))


def save(baseline: Baseline, path: Path) -> None:
    """Validate a baseline as a reader would and write it atomically."""
    document = baseline.to_json()
    from_json(document, str(path))
    write_json(path, document)


@dataclass(frozen=True)
class Resolved:
    """The baseline chosen for a run, why it was chosen, and what the comparison crosses."""

    path: Path
    baseline: Baseline
    reason: str
    crossings: tuple[str, ...]


def crossings(key: Key, versions: dict[str, str], baseline: Baseline) -> list[str]:
    """Say where a run differs from a baseline: device class, versions of relevant libraries.

    Only the libraries the run's backend computes with count (a TensorFlow run crosses
    nothing when JAX is missing or newer).
    """
    found = []
    if baseline.key.device_class != key.device_class:
        found.append(f"device: baseline {baseline.key.device_class}, this run {key.device_class}")
    relevant = relevant_libraries(key.backend)
    for name, version in sorted(baseline.provenance.versions.items()):
        if name in relevant and versions.get(name) != version:
            found.append(f"{name}: baseline {version}, this run {versions.get(name)}")
    return found


def _version_distance(a: str | None, b: str | None) -> tuple[int, ...]:
    def parts(text: str | None) -> list[int]:
        return [int(p) for p in re.findall(r"\d+", text or "")[:3]] + [0, 0, 0]

    return tuple(abs(x - y) for x, y in zip(parts(a), parts(b), strict=False))[:3]


def resolve(key: Key, versions: dict[str, str], root: Path) -> Resolved:
    """Find the baseline for a run; raise BaselineError (saying how to make one) if none fits.

    The closest baseline is the file of exactly this key when there is one; otherwise, among
    baselines of the same budget, backend, precision and device kind ('cpu' or 'gpu'), the
    one with the fewest differing library versions, then the nearest versions (major, minor,
    patch), then the name. The reason for the choice is returned with it.
    """
    exact = key.path(root)
    if exact.exists():
        baseline = load(exact)
        if baseline.key != key:
            raise BaselineError(
                f"{exact}: its content is the baseline of {baseline.key}, not of {key} as its "
                "name says (copied or renamed?); move it back or regenerate it"
            )
        return Resolved(exact, baseline, "exact key", tuple(crossings(key, versions, baseline)))
    candidates = []
    for path in layout.baseline_files(root, key.budget):
        try:
            baseline = load(path)
        except BaselineError:
            continue  # a broken file of another device is not this run's concern
        other = baseline.key
        if (other.backend, other.precision, other.device_kind) != (
            key.backend,
            key.precision,
            key.device_kind,
        ):
            continue
        crossed = crossings(key, versions, baseline)
        libraries = [c for c in crossed if not c.startswith("device:")]
        distance = sorted(
            (_version_distance(baseline.provenance.versions.get(n), versions.get(n))
             for n in relevant_libraries(key.backend)),
            reverse=True,
        )  # fmt: skip
        candidates.append(((len(libraries), distance, path.name), path, baseline, crossed))
    if not candidates:
        raise BaselineError(
            f"No baseline for {key} (looked for {exact} and for other {key.device_kind} "
            f"devices under {root / key.budget})."
        )
    _, path, baseline, crossed = min(candidates, key=lambda c: c[0])
    reason = (
        f"closest of {len(candidates)}: no baseline for {key.device_class}; same device kind "
        f"({key.device_kind}), {sum(not c.startswith('device:') for c in crossed)} library "
        "version(s) differ"
    )
    return Resolved(path, baseline, reason, tuple(crossed))


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
