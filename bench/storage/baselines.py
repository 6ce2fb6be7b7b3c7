"""Measured baselines: one typed definition, one versioned loader, aggregation and lookup.

A baseline holds, for completed run records that share a key (budget, backend, precision,
device class), per architecture, n, mean, sd, min and max of each gated metric over its
seeds, the band parameters (`Tolerance`) and provenance. It is made from runs by
`bench.measurement.aggregate`; its bands are `bench.measurement.bands`.

Versions: this harness writes version 6. Version 1 (whose best-epoch throughput was called
`samples_per_second`), version 2 (before time-to-target), version 3 (speed statistics
always present), version 4 (before per-step timings) and version 5 (before training and
evaluation seconds) are migrated on load; any other version is refused with the command that
regenerates it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import Summary, describe
from bench.storage import layout, schema
from bench.storage.atomic import write_json
from bench.storage.records import MAX_SEED, Device, RunRecord
from bench.storage.schema import SchemaError, bounds, one_of, safe_name
from bench.vocabulary import BACKENDS, POLICIES, relevant_libraries

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
    """The band parameters of the gate, each within stated limits.

    What each parameter does is said once, beside the band that uses it:
    `bench.measurement.bands.BANDS`.
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

    def patched(self, override: dict[str, float], where: str) -> Tolerance:
        """Return this tolerance with a per-architecture override applied and checked."""
        try:
            return schema.load(Tolerance, dataclasses.asdict(self) | override, where)
        except SchemaError as error:
            raise BaselineError(f"tolerance override: {error}") from None


@dataclass(frozen=True)
class MetricStats(Summary):
    """One metric over a baseline's seeds: a `Summary`, checked as read from a file."""

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
    def on(cls, device: Device, budget: str, backend: str, precision: str) -> Key:
        """Return the key of runs on `device` (its class is derived here, and only here)."""
        return cls(budget, backend, device_class(device), precision)

    @classmethod
    def of(cls, record: RunRecord) -> Key:
        """Return the key a run record belongs to."""
        return cls.on(record.provenance.device, record.config.budget.name,
                      record.provenance.backend, record.config.precision)  # fmt: skip

    def __str__(self) -> str:
        return (
            f"budget={self.budget} backend={self.backend} precision={self.precision} "
            f"device={self.device_class}"
        )


@dataclass(frozen=True)
class BaselineProvenance(Origin):
    """A baseline's origin (`Origin`) with the library versions and device of its runs."""

    versions: dict[str, str]
    device: Device


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


MIGRATIONS = {
    1: _migrate_v1,
    2: schema.added(3, "time-to-target statistics and their margin are new (absent before)"),
    3: schema.added(4, "speed statistics may be null (every run shared its machine)"),
    4: schema.added(5, "per-step timings and their band are new (absent before)"),
    5: schema.added(6, "training and evaluation seconds and their band are new (absent before)"),
}
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


def resolve(key: Key, versions: dict[str, str], root: Path, arch: str | None = None) -> Resolved:
    """Find the baseline for a run; raise BaselineError (saying how to make one) if none fits.

    The closest baseline is the file of exactly this key when there is one; otherwise, among
    baselines of the same budget, backend, precision and device kind ('cpu' or 'gpu'), the
    one with the fewest differing library versions, then the nearest versions (major, minor,
    patch), then the name. The reason for the choice is returned with it. With `arch`, only
    a file with an entry for that architecture counts: a device's own file measured for some
    architectures leaves the others to the closest file that has them.
    """
    exact = key.path(root)
    if exact.exists():
        baseline = load(exact)
        if baseline.key != key:
            raise BaselineError(
                f"{exact}: its content is the baseline of {baseline.key}, not of {key} as its "
                "name says (copied or renamed?); move it back or regenerate it"
            )
        if arch is None or arch in baseline.archs:
            found = tuple(crossings(key, versions, baseline))
            return Resolved(exact, baseline, "exact key", found)
    candidates = []
    for path in layout.baseline_files(root, key.budget):
        try:
            baseline = load(path)
        except BaselineError:
            continue  # a broken file of another device is not this run's concern
        other = baseline.key
        if path == exact or (arch is not None and arch not in baseline.archs):
            continue
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
        which = f" with an entry for {arch}" if arch is not None else ""
        raise BaselineError(
            f"No baseline for {key}{which} (looked for {exact} and for other "
            f"{key.device_kind} devices under {root / key.budget})."
        )
    _, path, baseline, crossed = min(candidates, key=lambda c: c[0])
    mine = f" of {arch}" if arch is not None and exact.exists() else ""
    reason = (
        f"closest of {len(candidates)}: no baseline{mine} for {key.device_class}; same device kind "
        f"({key.device_kind}), {sum(not c.startswith('device:') for c in crossed)} library "
        "version(s) differ"
    )
    return Resolved(path, baseline, reason, tuple(crossed))
