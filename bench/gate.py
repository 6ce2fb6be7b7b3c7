"""The regression gate: measured baselines, tolerance bands, and the checks against them.

Band rule (documented in the README and stored in every baseline):

* accuracy: a run fails when its final test accuracy is below
  ``mean - max(k * sd, floor)`` of the baseline's seeds (k = 3, floor = 0.01);
* loss: a run fails when its final test loss is above ``mean + max(k * sd, floor_rel * mean)``
  (floor_rel = 0.25);
* efficiency: a run fails when its achieved training FLOP/s (fastest steady epoch), as a
  fraction of the matmul peak measured in the same process, is below
  ``min * (1 - margin)`` of the baseline's seeds (margin = 0.25).

k * sd lets an honest rerun with another seed pass; the floors keep a band from collapsing when
a few seeds happen to agree. Speed on a shared machine is bimodal (whole epochs throttled to
about half speed), so its band starts from the slowest honest seed, not the mean. Thresholds
can be overridden per architecture (a baseline's "tolerance" entry): pytest-benchmark users
ask for thresholds per group.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.atomic import write_json

SCHEMA = "cnn-mnist-bench/baseline"
VERSION = 1
BASELINE_ROOT = Path(__file__).resolve().parent.parent / "baselines" / "measured"
METRICS = ("test_accuracy", "test_loss", "efficiency", "samples_per_second")
REGEN_HINT = (
    "Create it by running the benchmark with regeneration on this machine, e.g.\n"
    "  pytest bench --cnnbench-budget={budget} --cnnbench-seeds=0,1,2,3,4 --cnnbench-regen\n"
    "or aggregate existing run records: python -m bench baseline RECORD.json ..."
)


class BaselineError(ValueError):
    """A baseline file is missing, malformed, or of an unsupported version."""


@dataclass(frozen=True)
class Tolerance:
    """The band parameters; see the module docstring for the rule."""

    k: float = 3.0
    accuracy_floor: float = 0.01
    loss_floor_rel: float = 0.25
    efficiency_margin: float = 0.25

    def lowest_accuracy(self, stats: dict[str, Any]) -> float:
        """Return the lowest passing test accuracy, given a baseline's accuracy statistics."""
        return stats["mean"] - max(self.k * stats["sd"], self.accuracy_floor)

    def highest_loss(self, stats: dict[str, Any]) -> float:
        """Return the highest passing test loss, given a baseline's loss statistics."""
        return stats["mean"] + max(self.k * stats["sd"], self.loss_floor_rel * stats["mean"])

    def describe(self) -> dict[str, str]:
        """Return the band rule, in words, with this tolerance's numbers."""
        return {
            "test_accuracy": f"fail below mean - max({self.k} * sd, {self.accuracy_floor})",
            "test_loss": f"fail above mean + max({self.k} * sd, {self.loss_floor_rel} * mean)",
            "efficiency": f"fail below min * (1 - {self.efficiency_margin})",
        }


@dataclass(frozen=True)
class Key:
    """What a baseline is valid for: budget tier, backend, device class and precision."""

    budget: str
    backend: str
    device_class: str
    precision: str

    def path(self, root: Path = BASELINE_ROOT) -> Path:
        """Return the baseline file for this key under `root`."""
        return root / self.budget / f"{self.backend}-{self.precision}-{self.device_class}.json"


def device_class(device: dict[str, Any]) -> str:
    """Return a filename-safe device class, e.g. 'cpu-intel-xeon-processor' or 'gpu-nvidia-h100'."""
    name = re.sub(r"\((r|tm)\)", "", str(device.get("name", "unknown")).lower())
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return f"{device.get('kind', 'cpu')}-{slug}"


def key_of(record: dict[str, Any]) -> Key:
    """Return the baseline key a run record belongs to."""
    prov = record["provenance"]
    return Key(
        budget=record["config"]["budget"]["name"],
        backend=prov["backend"],
        device_class=device_class(prov["device"]),
        precision=record["config"]["precision"],
    )


def metric_values(record: dict[str, Any]) -> dict[str, float | None]:
    """Return the gated metrics of one run record, derived from its raw measurements.

    Throughput and efficiency come from the fastest steady-state epoch (see
    `bench.training._timing`): training FLOPs per sample x samples / seconds / peak FLOP/s.
    """
    timing, final = record["timing"], record["final"]
    steady = [e["train_seconds"] for e in record.get("epochs", []) if not e.get("compiled")]
    samples = record["config"].get("train_samples")
    sps = samples / min(steady) if steady and samples else None
    flops, peak = timing.get("training_flops_per_sample"), timing.get("peak_flops")
    return {
        "test_accuracy": final.get("test_accuracy"),
        "test_loss": final.get("test_loss"),
        "efficiency": sps * flops / peak if sps and flops and peak else None,
        "samples_per_second": sps,
    }


def describe(values: Sequence[float]) -> dict[str, Any]:
    """Return n, mean, sample standard deviation, min, max and the values themselves."""
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def aggregate(records: Sequence[dict[str, Any]], tolerance: Tolerance = Tolerance()) -> dict:
    """Build a baseline document from completed run records that share one key."""
    if not records:
        raise BaselineError("no run records to aggregate")
    keys = {key_of(record) for record in records}
    if len(keys) > 1:
        raise BaselineError(f"records belong to different baselines: {sorted(map(str, keys))}")
    bad = [r["arch"]["id"] for r in records if r["status"] != "completed"]
    if bad:
        raise BaselineError(f"only completed runs make a baseline; not completed: {bad}")
    (key,) = keys
    by_arch: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_arch.setdefault(record["arch"]["id"], []).append(record)
    archs = {}
    for arch_id, runs in by_arch.items():
        seeds = [run["config"]["seed"] for run in runs]
        if len(set(seeds)) != len(seeds):
            raise BaselineError(f"{arch_id}: the same seed appears twice: {seeds}")
        entry: dict[str, Any] = {"seeds": seeds}
        for metric in METRICS:
            values = [metric_values(run)[metric] for run in runs]
            if any(v is None for v in values):
                raise BaselineError(f"{arch_id}: some runs lack {metric} (too few epochs?)")
            entry[metric] = describe([float(v) for v in values if v is not None])
        entry["provenance"] = _provenance(runs)
        archs[arch_id] = entry
    first = records[0]["provenance"]
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "key": dataclasses.asdict(key),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tolerance": dataclasses.asdict(tolerance),
        "band_rule": tolerance.describe(),
        "provenance": {"versions": first["versions"], "device": first["device"]}
        | _provenance(records),
        "archs": archs,
    }


def _provenance(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    started = sorted(r["provenance"].get("started_at", "") for r in runs)
    return {
        "git_commits": sorted({str(r["provenance"].get("git_commit")) for r in runs}),
        "commands": sorted({r["provenance"]["command"] for r in runs}),
        "runs_started": [started[0], started[-1]],
    }


def validate(document: Any, origin: str) -> dict[str, Any]:
    """Return a baseline document if valid; raise BaselineError naming `origin` otherwise."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise BaselineError(f"{origin}: not a baseline (schema must be {SCHEMA!r})")
    if document.get("version") != VERSION:
        raise BaselineError(
            f"{origin}: baseline version {document.get('version')!r}; this harness reads "
            f"version {VERSION}. Regenerate it."
        )
    for field in ("key", "tolerance", "provenance", "archs"):
        if not isinstance(document.get(field), dict):
            raise BaselineError(f"{origin}: field {field!r} missing or not an object")
    for arch_id, entry in document["archs"].items():
        for metric in METRICS:
            stats = entry.get(metric) if isinstance(entry, dict) else None
            if not isinstance(stats, dict) or not all(
                isinstance(stats.get(s), int | float) and math.isfinite(stats[s])
                for s in ("mean", "sd", "min", "max")
            ):
                raise BaselineError(f"{origin}: archs.{arch_id}.{metric} is malformed")
    return document


def load(path: Path) -> dict[str, Any]:
    """Read and validate a baseline file."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError) as error:
        raise BaselineError(f"{path}: unreadable baseline ({error}). Regenerate it.") from error
    return validate(document, str(path))


@dataclass(frozen=True)
class Resolved:
    """The baseline chosen for a key, and what it crosses (device, library versions)."""

    path: Path
    document: dict[str, Any]
    crossings: tuple[str, ...]


# The libraries whose versions can move a run's numbers, beside python, keras and numpy.
BACKEND_LIBRARIES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


def resolve(key: Key, versions: dict[str, str], root: Path = BASELINE_ROOT) -> Resolved:
    """Find the baseline for `key`; say what it crosses; raise BaselineError when none exists.

    The exact device class comes first; failing that, a baseline of the same budget, backend,
    precision and device kind on another device class, with the crossing said in `crossings`.
    Library crossings count only the libraries the run's backend uses (a TensorFlow run does
    not cross anything when JAX is missing or newer).
    """
    exact = key.path(root)
    if exact.exists():
        path = exact
    else:
        pattern = f"{key.backend}-{key.precision}-{key.device_class.split('-')[0]}-*.json"
        others = sorted((root / key.budget).glob(pattern))
        if not others:
            raise BaselineError(
                f"No baseline for budget={key.budget} backend={key.backend} "
                f"precision={key.precision} device={key.device_class} (looked for {exact}).\n"
                + REGEN_HINT.format(budget=key.budget)
            )
        path = others[0]
    document = load(path)
    crossings = []
    stored = document["key"].get("device_class")
    if stored != key.device_class:
        crossings.append(f"device: baseline {stored}, this run {key.device_class}")
    relevant = {"python", "keras", "numpy", *BACKEND_LIBRARIES.get(key.backend, ())}
    for name, version in sorted(document["provenance"].get("versions", {}).items()):
        if name in relevant and versions.get(name) != version:
            crossings.append(f"{name}: baseline {version}, this run {versions.get(name)}")
    return Resolved(path, document, tuple(crossings))


@dataclass(frozen=True)
class Check:
    """One gated comparison: a metric of one architecture against its band."""

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


def tolerance_for(document: dict[str, Any], arch_id: str) -> Tolerance:
    """Return the baseline's tolerance with any per-architecture override applied."""
    base = dict(document.get("tolerance", {}))
    base.update(document["archs"].get(arch_id, {}).get("tolerance", {}))
    known = {f.name for f in dataclasses.fields(Tolerance)}
    unknown = set(base) - known
    if unknown:
        raise BaselineError(f"unknown tolerance fields {sorted(unknown)}; known: {sorted(known)}")
    return Tolerance(**base)


def check_record(
    record: dict[str, Any], document: dict[str, Any], origin: str, *, speed: bool = True
) -> list[Check]:
    """Compare one run record with its architecture's entry in a baseline."""
    arch_id = record["arch"]["id"]
    if arch_id not in document["archs"]:
        raise BaselineError(
            f"{origin} has no entry for {arch_id}. "
            + REGEN_HINT.format(budget=document["key"]["budget"])
        )
    entry, tol = document["archs"][arch_id], tolerance_for(document, arch_id)
    observed = metric_values(record)
    seed = record["config"].get("seed")
    acc, loss, eff = entry["test_accuracy"], entry["test_loss"], entry["efficiency"]
    checks = [
        Check(arch_id, "test_accuracy", observed["test_accuracy"], acc["mean"],
              tol.lowest_accuracy(acc), "min", origin, seed),
        Check(arch_id, "test_loss", observed["test_loss"], loss["mean"],
              tol.highest_loss(loss), "max", origin, seed),
    ]  # fmt: skip
    if speed:
        checks.append(
            Check(arch_id, "efficiency", observed["efficiency"], eff["mean"],
                  eff["min"] * (1 - tol.efficiency_margin), "min", origin, seed)
        )  # fmt: skip
    return checks


def table(checks: Iterable[Check]) -> str:
    """Return a table (tabulate) of the checks: what moved, by how much, and the verdict."""
    rows = [
        [
            c.arch_id,
            c.seed,
            c.metric,
            c.observed,
            c.mean,
            ("≥ " if c.direction == "min" else "≤ ") + f"{c.bound:.4f}",
            f"{c.relative:+.1%}" if c.relative is not None else "n/a",
            "ok" if c.passed else "REGRESSION",
        ]
        for c in checks
    ]
    headers = ["arch", "seed", "metric", "observed", "baseline mean", "band", "change", "verdict"]
    return tabulate(rows, headers=headers, floatfmt=".4f")


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """Say what a regenerated baseline changes against the old one (means, per metric)."""
    if old is None:
        return "new baseline (there was none before)"
    rows = []
    for arch_id, entry in new["archs"].items():
        for metric in METRICS:
            before = old.get("archs", {}).get(arch_id, {}).get(metric, {}).get("mean")
            after = entry[metric]["mean"]
            change = f"{(after - before) / abs(before):+.2%}" if before else "new"
            rows.append([arch_id, metric, before, after, change])
    return tabulate(
        rows, headers=["arch", "metric", "old mean", "new mean", "change"], floatfmt=".4f"
    )


def save(document: dict[str, Any], path: Path) -> None:
    """Validate and write a baseline atomically."""
    validate(document, str(path))
    write_json(path, document)


def regenerate(records: Sequence[dict[str, Any]], root: Path = BASELINE_ROOT) -> tuple[Path, str]:
    """Aggregate `records` into their baseline file (atomically); return it and the diff.

    Architectures not among `records` keep their entries when the old file was measured with
    the same library versions and device; otherwise the file is replaced whole, since entries
    from different versions must not sit under one provenance. Per-architecture tolerance
    overrides are kept.
    """
    document = aggregate(records)
    path = Key(**document["key"]).path(root)
    old = None
    if path.exists():
        try:
            old = load(path)
        except BaselineError:
            old = None
    note = ""
    if old is not None:
        for arch_id, entry in document["archs"].items():
            if "tolerance" in old["archs"].get(arch_id, {}):
                entry["tolerance"] = old["archs"][arch_id]["tolerance"]
        same = all(
            old["provenance"].get(f) == document["provenance"][f] for f in ("versions", "device")
        )
        if same:
            kept = {a: e for a, e in old["archs"].items() if a not in document["archs"]}
            document["archs"] = kept | document["archs"]
        else:
            note = "replaced whole: library versions or device differ from the old baseline\n"
    save(document, path)
    return path, note + diff(old, document)


def env_root() -> Path:
    """Return the baseline root: $CNNBENCH_BASELINES, else the repository's baselines/measured."""
    return (
        Path(os.environ["CNNBENCH_BASELINES"])
        if os.environ.get("CNNBENCH_BASELINES")
        else BASELINE_ROOT
    )
