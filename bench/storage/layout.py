"""Where every file lives: results, run folders, records, checkpoints and baselines.

The one owner of file locations; everything else asks it. A results folder (`--out`,
default `results`) holds:

    runs/<budget>/<arch>/<variant>/seed<n>/record.json   one run (`run_dir`): its record,
                             checkpoint-epoch<k>.keras  the model after the epochs the record
                                                        holds (while running; see
                                                        bench.training.runfolder),
                                           model.keras  and the trained model
    runs/<budget>/<arch>/<variant>/.seed<n>.rerun/      a rerun, until it replaces the run
                                                        it repeats
    benchmark.json                              pytest-benchmark's JSON (`pytest bench`)
    report/                                     figures and report.md
    peers.json                                  the peer benchmark
    peers-logs/<arch>-<peer>.log                what each peer's process printed
    compare/comparison.json                     a paired base-vs-head comparison,
    compare/base.log, head.log                  and what each side's process printed
    history/                                    saved benchmark runs by commit
                                                (bench.report.history)

Baselines ship as the package `cnnbench_baselines` (the folder `baselines/`, found through
`importlib.resources`, so a plain `pip install` finds them as an editable one does, and a
user's own folder called `baselines` cannot shadow them); `$CNNBENCH_BASELINES` or
`--baselines` points the gate at another folder.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

from bench.storage.schema import SAFE_NAME

RECORD_FILE = "record.json"
CHECKPOINT_GLOB = "checkpoint*.keras"
MODEL_FILE = "model.keras"
DEFAULT_RESULTS = Path("results")
BASELINES_ENV = "CNNBENCH_BASELINES"


def checkpoint_file(epochs: int) -> str:
    """Return the name of the checkpoint taken after `epochs` epochs."""
    return f"checkpoint-epoch{epochs}.keras"


def variant(backend: str, precision: str, plant: str = "none") -> str:
    """Return the part of a run's identity beyond budget, architecture and seed.

    E.g. `tensorflow-mixed_bfloat16`, or `tensorflow-float32-plant-slow-step_0.1` for a run
    with a planted regression (which must never share a folder with an honest one). The
    precision is the resolved Keras policy, never `auto`.
    """
    planted = "" if plant == "none" else "-plant-" + plant.replace(":", "_")
    return _safe("run variant", f"{backend}-{precision}{planted}")


def rerun_dir(run_dir: Path) -> Path:
    """Return where a rerun of `run_dir` trains until it completes (hidden from globs)."""
    return run_dir.with_name(f".{run_dir.name}.rerun")


def _safe(kind: str, name: str) -> str:
    if not SAFE_NAME.match(name):
        raise ValueError(
            f"{kind} {name!r} cannot name a folder (letters, digits and '_.+-' only, "
            "no path separators or leading dot)"
        )
    return name


@dataclass(frozen=True)
class Results:
    """A results folder and the paths inside it."""

    root: Path = DEFAULT_RESULTS

    @property
    def runs(self) -> Path:
        """The folder of all run folders."""
        return self.root / "runs"

    def run_dir(self, budget: str, arch_id: str, seed: int, variant: str) -> Path:
        """Return one run's folder: runs/<budget>/<arch>/<variant>/seed<seed>.

        A run's identity is its architecture, its budget (the name says its numbers), its
        seed and its variant (`variant`: backend, precision, plant): runs that differ in any
        of them never share a folder, so none replaces or resumes another.
        """
        return (self.runs / _safe("budget", budget) / _safe("architecture", arch_id)
                / _safe("run variant", variant) / f"seed{seed}")  # fmt: skip

    def record_paths(self) -> list[Path]:
        """Return every run record under this folder, sorted."""
        return sorted(self.runs.glob(f"*/*/*/seed*/{RECORD_FILE}"))

    def legacy_run_dirs(self) -> list[Path]:
        """Return run folders of the layout before variants (runs/<budget>/<arch>/seed<n>)."""
        return sorted(p for p in self.runs.glob("*/*/seed*") if p.is_dir())

    @property
    def benchmark_json(self) -> Path:
        """pytest-benchmark's JSON of the main job."""
        return self.root / "benchmark.json"

    @property
    def report_dir(self) -> Path:
        """The report's folder."""
        return self.root / "report"

    @property
    def history(self) -> Path:
        """pytest-benchmark's saved runs, one per commit (`--benchmark-storage`)."""
        return self.root / "history"

    @property
    def compare_dir(self) -> Path:
        """A paired comparison's folder: its JSON and the two sides' logs."""
        return self.root / "compare"

    @property
    def comparison_json(self) -> Path:
        """The paired comparison's machine-readable result."""
        return self.compare_dir / "comparison.json"

    @property
    def bisect_dir(self) -> Path:
        """A bisection's folder: each step's comparison, in a folder of its own."""
        return self.root / "bisect"

    @property
    def bisection_json(self) -> Path:
        """The bisection's machine-readable result: its steps and the culprit."""
        return self.bisect_dir / "bisection.json"

    @property
    def peers_json(self) -> Path:
        """The peer benchmark's results."""
        return self.root / "peers.json"

    @property
    def peers_logs(self) -> Path:
        """What each peer's process printed, one log per architecture and peer."""
        return self.root / "peers-logs"


def _packaged() -> Path:
    """Return the stored-baselines folder: `baselines/`, installed as `cnnbench_baselines`."""
    return Path(str(importlib.resources.files("cnnbench_baselines")))


def default_baselines() -> Path:
    """Return the measured-baselines folder: $CNNBENCH_BASELINES, else the packaged one."""
    override = os.environ.get(BASELINES_ENV)
    return Path(override) if override else _packaged() / "measured"


def targets_path() -> Path:
    """Return the quality targets per budget (`bench.storage.targets`)."""
    return _packaged() / "targets.json"


def published_path() -> Path:
    """Return the notebook's published numbers."""
    return _packaged() / "published" / "notebook.json"


def baseline_path(root: Path, budget: str, backend: str, precision: str, device: str) -> Path:
    """Return the file of the baseline with this key under `root`."""
    name = f"{_safe('backend', backend)}-{_safe('precision', precision)}-{_safe('device', device)}"
    return root / _safe("budget", budget) / f"{name}.json"


def baseline_files(root: Path, budget: str) -> list[Path]:
    """Return every baseline file of a budget under `root`."""
    return sorted((root / _safe("budget", budget)).glob("*.json"))
