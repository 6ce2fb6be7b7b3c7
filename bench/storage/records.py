"""The record of one training run: one typed definition, one versioned loader.

A record holds the raw measurements every later step derives its figures from (per-epoch
metrics and clocks, the FLOP count, the matmul peaks, peak memory), the final test metrics,
per-layer weight summaries and provenance. Derived figures (samples/s, efficiency) are not
stored: `bench.measurement.metrics` computes them, once, for the gate, the benchmark and the report.

Versions: this harness writes version 6. Version 1 records (which also stored derived timing
figures, with `{}` for "not yet"), version 2 (before time-to-target), version 3 (before the
study's executor and machine sharing were recorded), version 4 (before per-step timings) and
version 5 (before the plant was recorded) are migrated on load;
any other version is refused with the command that writes a current record. The trainer and
the tests build records with the same constructors (`RunRecord.start`, `with_epoch`,
`finished`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.budgets import Budget
from bench.storage import schema
from bench.storage.atomic import write_json
from bench.storage.schema import SchemaError, bounds, one_of, safe_name
from bench.vocabulary import BACKENDS, POLICIES

SCHEMA = "cnn-mnist-bench/run"
VERSION = 6
STATUSES = ("completed", "diverged", "running")
EXECUTORS = ("local", "ray")
PLANT_NAME = re.compile(r"^[a-z0-9-]{1,32}(:[0-9.e+-]{1,16})?$")
"""A plant's name as `bench.training.plants` spells them (`none`, `lr0`, `stall:0.1`)."""
MAX_SEED = 2**32 - 1
"""Seeds are NumPy/TensorFlow seeds: unsigned 32-bit."""


class RecordError(ValueError):
    """A run record is malformed or of an unsupported version; the message names the field."""


@dataclass(frozen=True)
class ArchInfo:
    """The architecture a run trained, as the registry describes it."""

    id: str = field(metadata=safe_name())
    section: str
    params: int = field(metadata=bounds(1))
    conv_layers: int = field(metadata=bounds(0))
    dropout: bool
    batch_norm: bool


BudgetInfo = Budget
"""The budget a run trained under, as stored: `bench.budgets.Budget` itself (the name that
records of versions 1-5 were read with)."""


@dataclass(frozen=True)
class Config:
    """Everything that decides a run's numbers; a run resumes only into the same config."""

    budget: Budget
    seed: int = field(metadata=bounds(0, MAX_SEED))
    batch_size: int = field(metadata=bounds(1))
    eval_batch_size: int = field(metadata=bounds(1))
    optimizer: str
    learning_rate: float = field(metadata=bounds(0))
    precision: str = field(metadata=one_of(*POLICIES))
    train_samples: int = field(metadata=bounds(1))
    test_samples: int = field(metadata=bounds(1))
    eval_every: int | None = field(default=None, metadata=bounds(1))
    """Also evaluate every this many training steps inside an epoch (None: epoch ends only)."""
    plant: str = field(default="none", metadata={"pattern": PLANT_NAME})
    """The regression planted in this run (`bench.training.plants`); "none" for an honest run.
    A planted run is never resumed into, compared as, or made a baseline of an honest one."""


@dataclass(frozen=True)
class Epoch:
    """One epoch: training metrics, test-set metrics, and the two clocks, read apart."""

    epoch: int = field(metadata=bounds(1))
    loss: float = field(metadata=bounds(0))
    accuracy: float = field(metadata=bounds(0, 1))
    val_loss: float = field(metadata=bounds(0))
    val_accuracy: float = field(metadata=bounds(0, 1))
    train_seconds: float = field(metadata=bounds(above=0))
    eval_seconds: float = field(metadata=bounds(0))
    compiled: bool
    """True for the epoch that traced and compiled the train step (the first in a process)."""
    step_seconds: float | None = field(default=None, metadata=bounds(above=0))
    """Median wall seconds of the epoch's steady steps (`bench.measurement.metrics.WARMUP_STEPS`
    and a partial last batch left out), each read after its loss came back from the device."""
    step_cpu_seconds: float | None = field(default=None, metadata=bounds(0))
    """Median process CPU seconds (all threads) of the same steps."""


@dataclass(frozen=True)
class Evaluation:
    """A test-set evaluation inside an epoch (`--eval-every`), off the training clock."""

    position: float = field(metadata=bounds(above=0))
    """Where in training: epochs, fractional (1.5 = half way through the second epoch)."""
    train_seconds: float = field(metadata=bounds(0))
    """Training seconds since the run started, up to this point (evaluations excluded)."""
    seconds: float = field(metadata=bounds(0))
    """How long this evaluation took."""
    val_loss: float = field(metadata=bounds(0))
    val_accuracy: float = field(metadata=bounds(0, 1))


@dataclass(frozen=True)
class TimeToTarget:
    """When the run first evaluated at or above its budget's target test accuracy.

    `train_seconds` counts the training clock only, compilation included (AlgoPerf);
    `train_and_eval_seconds` adds every evaluation up to that one (MLPerf's wall clock, data
    loading aside). All three are None when the target was not reached.
    """

    target: float = field(metadata=bounds(0, 1))
    reached: bool
    epochs: float | None = field(default=None, metadata=bounds(above=0))
    train_seconds: float | None = field(default=None, metadata=bounds(0))
    train_and_eval_seconds: float | None = field(default=None, metadata=bounds(0))

    def __post_init__(self) -> None:
        if self.reached != (self.epochs is not None):
            raise ValueError("time_to_target: epochs is given exactly when the target is reached")


@dataclass(frozen=True)
class Timing:
    """Raw speed and memory measurements taken after the run, in the same process."""

    training_flops_per_sample: float = field(metadata=bounds(0))
    peak_flops: float = field(metadata=bounds(above=0))
    peak_dtype: str
    peaks: dict[str, float] = field(default_factory=dict, metadata=bounds(above=0))
    peak_rss_mb: float | None = field(default=None, metadata=bounds(0))
    peak_device_memory_mb: float | None = field(default=None, metadata=bounds(0))


@dataclass(frozen=True)
class Final:
    """The trained model's test-set metrics."""

    test_loss: float = field(metadata=bounds(0))
    test_accuracy: float = field(metadata=bounds(0, 1))


@dataclass(frozen=True)
class Histogram:
    """A histogram of one layer's kernel values."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class LayerSummary:
    """One conv or dense kernel: moments, quantiles and a histogram (absent if all NaN)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    count: int = field(metadata=bounds(0))
    non_finite: int = field(metadata=bounds(0))
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float] | None = None
    histogram: Histogram | None = None


@dataclass(frozen=True)
class Weights:
    """Where the trained model lies (beside the record) and its per-layer summaries."""

    file: str | None = field(metadata=safe_name())
    """A file name in the run's folder: no path, so nothing outside the folder is loaded."""
    layers: tuple[LayerSummary, ...] = ()


@dataclass(frozen=True)
class Divergence:
    """Where the loss stopped being finite."""

    epoch: int = field(metadata=bounds(1))
    batch: int = field(metadata=bounds(1))
    loss: str


@dataclass(frozen=True)
class Device:
    """The device a run trained on: 'cpu' or 'gpu', its name, and the host CPU."""

    kind: str = field(metadata=one_of("cpu", "gpu"))
    name: str
    cpu: str | None = None
    cpu_count: int | None = None


@dataclass(frozen=True)
class Placement:
    """How a study placed a run: its executor, the runs it shared the machine with, its command.

    Not stored as such: the trainer copies it into the record's `Provenance`.
    """

    executor: str | None = None
    concurrent_runs: int | None = None
    command: str | None = None


@dataclass(frozen=True)
class Provenance:
    """Where a result came from."""

    versions: dict[str, str]
    backend: str = field(metadata=one_of(*BACKENDS))
    device: Device
    precision: str = field(metadata=one_of(*POLICIES))
    data_digest: str
    started_at: str
    command: str
    seed: int | None = None
    git_commit: str | None = None
    host: str | None = None
    executor: str | None = field(default=None, metadata=one_of(*EXECUTORS))
    """What ran it: `local` or `ray` (`python -m bench study`); None for a run started alone."""
    concurrent_runs: int | None = field(default=None, metadata=bounds(0))
    """The most other runs that trained on the same machine while this one did (0: it had the
    machine to itself); None where nothing kept count. Timings of a run that shared its machine
    are not gated and make no speed baseline."""


@dataclass(frozen=True)
class RunRecord:
    """One training run, as written to `record.json`."""

    arch: ArchInfo
    config: Config
    provenance: Provenance
    status: str = field(default="running", metadata=one_of(*STATUSES))
    epochs: tuple[Epoch, ...] = ()
    timing: Timing | None = None
    final: Final | None = None
    weights: Weights | None = None
    divergence: Divergence | None = None
    evaluations: tuple[Evaluation, ...] = ()
    """Evaluations inside epochs (only with an evaluation interval); epoch ends are `epochs`."""
    time_to_target: TimeToTarget | None = None
    """None when the budget has no target (or the record predates targets)."""
    schema: str = field(default=SCHEMA, metadata=one_of(SCHEMA))
    version: int = VERSION

    def __post_init__(self) -> None:
        for index, epoch in enumerate(self.epochs):
            if epoch.epoch != index + 1:
                raise ValueError(f"epochs[{index}].epoch: expected {index + 1}, got {epoch.epoch}")
        if self.status == "completed":
            if len(self.epochs) != self.config.budget.epochs:
                raise ValueError(
                    f"epochs: a completed run has {self.config.budget.epochs} epochs, "
                    f"found {len(self.epochs)}"
                )
            if self.final is None:
                raise ValueError("final: a completed run has final test metrics")
        if self.status == "diverged" and self.divergence is None:
            raise ValueError("divergence: a diverged run says where it diverged")

    @classmethod
    def start(cls, arch: ArchInfo, config: Config, provenance: Provenance) -> RunRecord:
        """Return the record of a run that has trained nothing yet."""
        return cls(arch=arch, config=config, provenance=provenance)

    def with_epoch(self, epoch: Epoch) -> RunRecord:
        """Return this record with one more finished epoch."""
        return dataclasses.replace(self, epochs=(*self.epochs, epoch))

    def with_evaluation(self, evaluation: Evaluation) -> RunRecord:
        """Return this record with one more evaluation inside an epoch."""
        return dataclasses.replace(self, evaluations=(*self.evaluations, evaluation))

    def finished(
        self,
        timing: Timing,
        weights: Weights,
        final: Final | None = None,
        divergence: Divergence | None = None,
        time_to_target: TimeToTarget | None = None,
    ) -> RunRecord:
        """Return the record of a finished run: completed with `final`, or diverged."""
        status = "diverged" if divergence is not None else "completed"
        return dataclasses.replace(self, status=status, timing=timing, weights=weights,
                                   final=final, divergence=divergence,
                                   time_to_target=time_to_target)  # fmt: skip

    @property
    def completed(self) -> bool:
        """Whether the run trained its whole budget and was evaluated."""
        return self.status == "completed"

    @property
    def shared_machine(self) -> bool:
        """Whether other runs trained on the same machine at the same time (timings unfit)."""
        return bool(self.provenance.concurrent_runs)

    @property
    def label(self) -> str:
        """A short name for messages: architecture, budget and seed."""
        return f"{self.arch.id} {self.config.budget.name} seed={self.config.seed}"

    def to_json(self) -> dict[str, Any]:
        """Return the record as JSON-ready data."""
        return schema.dump(self)


def _migrate_v1(document: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: drop the derived timing figures; `{}` meant "not yet" and is now null."""
    document = dict(document, version=2)
    timing = document.get("timing")
    if isinstance(timing, dict):
        raw = {f.name for f in dataclasses.fields(Timing)}
        kept = {k: v for k, v in timing.items() if k in raw}
        document["timing"] = kept if "peak_flops" in kept else None
    for name in ("final", "weights"):
        if document.get(name) == {}:
            document[name] = None
    return document


def _migrate_v5(document: dict[str, Any]) -> dict[str, Any]:
    """Version 5 -> 6: the plant is part of the configuration (not recorded before).

    A learning rate of 0 was the `lr0` plant; any other run is taken as honest (a slowdown
    plant left no trace in a version 5 record).
    """
    config = document.get("config")
    if isinstance(config, dict) and "plant" not in config:
        config = dict(config, plant="lr0" if config.get("learning_rate") == 0 else "none")
    return dict(document, version=6, config=config)


MIGRATIONS = {
    1: _migrate_v1,
    2: schema.added(3, "evaluations inside epochs and time-to-target are new (absent before)"),
    3: schema.added(4, "the executor and machine sharing are new (not counted before: None)"),
    4: schema.added(5, "per-step timings of each epoch are new (not measured before: None)"),
    5: _migrate_v5,
}
"""Version -> a function that lifts a document of that version by one."""
REGENERATE = "train the run again to write a current record (python -m bench run ... --force)."


def from_json(document: Any) -> RunRecord:
    """Return a RunRecord from parsed JSON (migrating older versions); raise RecordError."""
    try:
        return schema.load_versioned(RunRecord, document, MIGRATIONS, REGENERATE)
    except SchemaError as error:
        raise RecordError(str(error)) from None


def save(record: RunRecord, path: str | os.PathLike[str]) -> Path:
    """Validate a record as a reader would (types, ranges) and write it atomically."""
    document = record.to_json()
    from_json(document)
    write_json(path, document)
    return Path(path)


def load(path: str | os.PathLike[str]) -> RunRecord:
    """Read and validate a record; errors name the file and the faulty field."""
    document = schema.read_json(Path(path), RecordError, "record")
    try:
        return from_json(document)
    except RecordError as error:
        raise RecordError(f"{path}: {error}") from None
