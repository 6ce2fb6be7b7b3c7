"""The pytest plugin behind `pytest bench`: options, benchmark settings, gate, and summary.

All options share the `--cnnbench-` prefix and live in one group. Values are checked by typed
converters, so a bad value stops pytest with a usage error that lists the valid ones. Nothing
here imports Keras before `pytest_configure`, so `--cnnbench-backend` can still choose it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.budgets import BUDGETS, DEFAULT_BUDGET
from bench.precisions import DEFAULT_PRECISION, PRECISIONS

BACKENDS = ("tensorflow", "jax", "torch")
PLANTS = ("none", "lr0", "shuffled-labels", "slow-step")
GATES = ("all", "accuracy", "off")


def _archs(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError(f"expected comma-separated architecture ids, got {text!r}")
    return ids


def _check_archs(ids: list[str]) -> list[str]:
    from archs import REGISTRY

    unknown = [i for i in ids if i not in REGISTRY]
    if unknown:
        raise pytest.UsageError(
            f"--cnnbench-archs: unknown architecture(s) {unknown}; valid: {','.join(REGISTRY)}"
        )
    return ids


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds are comma-separated non-negative integers, got {text!r}"
        ) from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct non-negative integers: {text!r}")
    return seeds


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the --cnnbench-* options."""
    group = parser.getgroup("cnnbench", "CNN MNIST benchmarks and regression gate")
    group.addoption(
        "--cnnbench-budget",
        choices=list(BUDGETS),
        default=DEFAULT_BUDGET,
        help=f"training budget tier (default {DEFAULT_BUDGET})",
    )
    group.addoption(
        "--cnnbench-archs",
        type=_archs,
        default=None,
        help="comma-separated architecture ids (default: the notebook's six)",
    )
    group.addoption(
        "--cnnbench-seeds",
        type=_seeds,
        default=[0],
        help="comma-separated seeds (default 0); use 5 or more to regenerate",
    )
    group.addoption(
        "--cnnbench-backend",
        choices=BACKENDS,
        default=None,
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)",
    )
    group.addoption(
        "--cnnbench-precision",
        choices=PRECISIONS,
        default=DEFAULT_PRECISION,
        help="Keras dtype policy; auto (default) = the fastest one measured to keep float32's "
        "accuracy: mixed_bfloat16 for TensorFlow on CPUs with AVX512_BF16/AMX, else float32",
    )
    group.addoption(
        "--cnnbench-gate",
        choices=GATES,
        default="all",
        help="what to gate: accuracy and speed (all), accuracy only, or nothing",
    )
    group.addoption(
        "--cnnbench-regen",
        action="store_true",
        help="write this run's results as the baseline (needs >= 2 seeds)",
    )
    group.addoption(
        "--cnnbench-baselines",
        type=Path,
        default=None,
        help="baseline folder (default: baselines/measured)",
    )
    group.addoption(
        "--cnnbench-out",
        type=Path,
        default=Path("results/bench"),
        help="where run records go (default results/bench)",
    )
    group.addoption("--cnnbench-plant", choices=PLANTS, default="none",
                    help="plant a regression to prove the gate fails on it")  # fmt: skip


@dataclass
class Settings:
    """The benchmark session's settings, parsed once, plus what the session collects."""

    budget: str
    archs: list[str]
    seeds: list[int]
    precision: str
    gate: str
    regen: bool
    baselines: Path
    out: Path
    plant: str
    records: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)
    crossings: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


_SETTINGS = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    """Fix the Keras backend before anything imports Keras; parse the settings once."""
    backend = config.getoption("--cnnbench-backend")
    if backend:
        import sys

        if "keras" in sys.modules:
            import keras

            if keras.backend.backend() != backend:
                raise pytest.UsageError(
                    f"--cnnbench-backend={backend}, but Keras was already imported with the "
                    f"{keras.backend.backend()} backend; set KERAS_BACKEND={backend} instead."
                )
        os.environ["KERAS_BACKEND"] = backend
    seeds = config.getoption("--cnnbench-seeds")
    regen = config.getoption("--cnnbench-regen")
    if regen and len(seeds) < 2:
        raise pytest.UsageError(
            "--cnnbench-regen needs at least 2 seeds (5 recommended) so the band has a spread; "
            "e.g. --cnnbench-seeds=0,1,2,3,4"
        )
    if regen and config.getoption("--cnnbench-plant") != "none":
        raise pytest.UsageError("--cnnbench-regen with a planted regression would store it")
    from archs import NOTEBOOK_IDS
    from bench.gate import env_root

    config.stash[_SETTINGS] = Settings(
        budget=config.getoption("--cnnbench-budget"),
        archs=_check_archs(config.getoption("--cnnbench-archs") or list(NOTEBOOK_IDS)),
        seeds=seeds,
        precision=config.getoption("--cnnbench-precision"),
        gate=config.getoption("--cnnbench-gate"),
        regen=regen,
        baselines=config.getoption("--cnnbench-baselines") or env_root(),
        out=config.getoption("--cnnbench-out"),
        plant=config.getoption("--cnnbench-plant"),
    )
    config.addinivalue_line("markers", "full: the notebook's full budget (hours on CPU; not CI)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize benchmarks over the chosen architectures (ids = registry ids) and seeds."""
    settings = metafunc.config.stash[_SETTINGS]
    if "bench_arch" in metafunc.fixturenames:
        marks = [pytest.mark.full] if settings.budget == "full" else []
        metafunc.parametrize(
            "bench_arch", [pytest.param(a, id=a, marks=marks) for a in settings.archs]
        )
    if "bench_seed" in metafunc.fixturenames:
        metafunc.parametrize("bench_seed", settings.seeds, ids=[f"seed{s}" for s in settings.seeds])


@pytest.fixture(scope="session")
def cnnbench(request: pytest.FixtureRequest) -> Settings:
    """Return the benchmark session's settings."""
    return request.config.stash[_SETTINGS]


@pytest.fixture(scope="session")
def live_write(request: pytest.FixtureRequest) -> Any:
    """Return a writer that shows progress lines live, even while pytest captures output."""
    config = request.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None or capman is None:
            print(line, flush=True)
            return
        with capman.global_and_fixture_disabled():
            reporter.write_line(line)

    return write


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Add versions, the Keras backend, the device and precision to pytest-benchmark's JSON."""
    from bench import provenance
    from bench.precisions import resolve

    requested = config.getoption("--cnnbench-precision")
    machine_info["cnnbench"] = {
        "versions": provenance.library_versions(),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "device": provenance.device(),
        "git_commit": provenance.git_commit(),
        "precision": {"requested": requested, "resolved": resolve(requested)},
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With --cnnbench-regen, write the baselines from this session's records (atomically)."""
    settings = session.config.stash.get(_SETTINGS, None)
    if settings is None or not settings.regen or not settings.records:
        return
    from bench import gate

    if exitstatus != 0:
        settings.notes.append("baselines NOT regenerated: some benchmarks failed")
        return
    groups: dict[Any, list[dict[str, Any]]] = {}
    for record in settings.records:
        groups.setdefault(gate.key_of(record), []).append(record)
    for records in groups.values():
        path, changes = gate.regenerate(records, settings.baselines)
        settings.notes.append(f"regenerated baseline {path}:\n{changes}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the gate's table of what moved, what the comparison crosses, and regenerations."""
    settings = config.stash.get(_SETTINGS, None)
    if settings is None or not (settings.checks or settings.notes):
        return
    from bench import gate

    terminalreporter.section("cnnbench regression gate")
    if settings.checks:
        terminalreporter.write_line(gate.table(settings.checks))
        failed = sum(not c.passed for c in settings.checks)
        terminalreporter.write_line(f"{failed} regression(s) in {len(settings.checks)} checks")
    for crossing in sorted(settings.crossings):
        terminalreporter.write_line(f"NOTE: comparison crosses {crossing}")
    for note in settings.notes:
        terminalreporter.write_line(note)
