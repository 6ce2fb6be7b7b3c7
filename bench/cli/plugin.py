"""The pytest plugin behind `pytest bench`: options, the session's gate, and its summary.

Registered through the `pytest11` entry point `cnnbench` (`-p no:cnnbench` turns it off).
Options are `bench.cli.options`' declarations with the `--cnnbench-` prefix; the gate is
`bench.gate.Gate`, the same workflow as `python -m bench gate`. Nothing here imports Keras
before `pytest_configure`, so `--cnnbench-backend` can still choose it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.cli import options
from bench.cli.options import PYTEST_PREFIX, OptionError, Settings
from bench.storage import layout
from bench.training.request import RunRequest

PYTEST_OPTIONS = (*options.TRAINING, "out", "gate", "baselines", "summary", "regen",
                  "allow-fewer-seeds", *options.COMPARISON)  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the --cnnbench-* options, in one group."""
    group = parser.getgroup("cnnbench", "CNN MNIST benchmarks and regression gate")
    options.add_options(group.addoption, PYTEST_OPTIONS, prefix=PYTEST_PREFIX)


@dataclass
class BenchSession:
    """What one `pytest bench` session settles on and collects: settings, gate, runs, notes."""

    settings: Settings
    request: RunRequest
    """What the session trains, resolved once from the settings."""
    gate: Any
    runs: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    comparison: Any = None
    """The paired comparison with a base (`bench.compare`), when the session made one."""
    migrated: bool = False
    held: Any = None
    """The results folder's writer lock, once the session writes a run (`bench.storage.lock`)."""

    @property
    def results(self) -> layout.Results:
        """The results folder."""
        return layout.Results(self.settings.out)

    def run_dir(self, budget: str, arch_id: str, seed: int) -> Path:
        """Return a run's folder, its variant (backend, precision, plant) in its path.

        The first call moves run folders of the older layout into their variants.
        """
        from bench.training.precisions import resolve
        from bench.training.runfolder import migrate_legacy

        if self.held is None:
            from contextlib import ExitStack

            from bench.storage import lock

            self.held = ExitStack()
            self.held.enter_context(lock.writer(self.results.root))  # FolderBusy: refused
        if not self.migrated:
            migrate_legacy(self.results, self.notes.append)
            self.migrated = True
        variant = layout.variant(self.request.backend, resolve(self.request.precision),
                                 self.request.plant)  # fmt: skip
        return self.results.run_dir(budget, arch_id, seed, variant)

    def require_baseline(self, budget: str) -> None:
        """Fail now, before training, when the gate will have no baseline for this session."""
        self.gate.require_here(budget, self.request.backend, self.request.precision)

    def regen_command(self) -> str:
        """Return the command that makes the missing baseline, with this session's options."""
        from bench.budgets import BASELINE_SEEDS
        from bench.training.backends import requested

        again = dataclasses.replace(self.settings, seeds=BASELINE_SEEDS, regen=True,
                                    backend=self.settings.backend or requested())  # fmt: skip
        args = again.pytest_args(("budget", "archs", "seeds", "epochs", "train-samples",
                                  "backend", "precision", "baselines", "regen"))  # fmt: skip
        return "pytest bench " + " ".join(args)


_SESSION = pytest.StashKey[BenchSession]()


def pytest_configure(config: pytest.Config) -> None:
    """Fix the Keras backend before anything imports Keras; parse the settings once."""
    config.addinivalue_line("markers", "full: the notebook's full budget (hours on CPU; not CI)")
    try:
        settings = Settings.parse(lambda dest: config.getoption(dest, None))
    except OptionError as error:
        raise pytest.UsageError(f"cnnbench: {error}") from None
    if settings.backend:
        if "keras" in sys.modules:
            import keras

            if keras.backend.backend() != settings.backend:
                raise pytest.UsageError(
                    f"--cnnbench-backend={settings.backend}, but Keras was already imported "
                    f"with the {keras.backend.backend()} backend; set "
                    f"KERAS_BACKEND={settings.backend} instead."
                )
        os.environ["KERAS_BACKEND"] = settings.backend
    if settings.data:
        os.environ["CNNBENCH_DATA"] = str(settings.data)
    from bench.gate import Gate

    gate = Gate(settings.baselines or layout.default_baselines(),
                "off" if settings.regen else settings.gate)  # fmt: skip
    try:
        request = settings.request()
    except OptionError as error:
        raise pytest.UsageError(f"cnnbench: {error}") from None
    session = BenchSession(settings, request, gate)
    gate.regen_hint = session.regen_command()
    config.stash[_SESSION] = session


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize benchmarks over the chosen architectures (ids = registry ids) and seeds."""
    settings = metafunc.config.stash[_SESSION].settings
    if "bench_arch" in metafunc.fixturenames:
        marks = [pytest.mark.full] if settings.budget == "full" else []
        metafunc.parametrize(
            "bench_arch", [pytest.param(a, id=a, marks=marks) for a in settings.archs]
        )
    if "bench_seed" in metafunc.fixturenames:
        metafunc.parametrize("bench_seed", settings.seeds, ids=[f"seed{s}" for s in settings.seeds])


@pytest.fixture(scope="session")
def cnnbench(request: pytest.FixtureRequest) -> BenchSession:
    """Return the benchmark session: settings, gate, and the runs so far."""
    return request.config.stash[_SESSION]


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


def extra_info(record: Any, plant: str) -> dict[str, Any]:
    """Return what a reader of the benchmark JSON needs about one run (`metrics.of`)."""
    from bench.measurement import metrics

    derived = dataclasses.asdict(metrics.of(record))
    return {
        "arch": record.arch.id,
        "seed": record.config.seed,
        "budget": dataclasses.asdict(record.config.budget),
        "samples_per_epoch": record.config.train_samples,
        **derived,
        "samples_per_second": derived["median_samples_per_second"],
        "peak_flops": record.timing.peak_flops if record.timing else None,
        "backend": record.provenance.backend,
        "precision": record.config.precision,
        "device": record.provenance.device.name,
        "plant": plant,
    }


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Add versions, the Keras backend, the device and precision to pytest-benchmark's JSON."""
    from bench.measurement import provenance
    from bench.training.backends import requested
    from bench.training.precisions import resolve

    precision = config.stash[_SESSION].settings.precision
    machine_info["cnnbench"] = {
        "versions": provenance.library_versions(),
        "backend": requested(),
        "device": dataclasses.asdict(provenance.device()),
        "git_commit": provenance.git_commit(),
        "precision": {"requested": precision, "resolved": resolve(precision)},
    }


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list, output_json: dict
) -> None:
    """Put the session's paired comparison, when it made one, into the benchmark JSON."""
    bench = config.stash.get(_SESSION, None)
    if bench is not None and bench.comparison is not None:
        output_json["cnnbench_comparison"] = bench.comparison.document()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With --cnnbench-regen, write the baseline from this session's runs (atomically).

    Then release the results folder's lock, if the session took it.
    """
    bench = session.config.stash.get(_SESSION, None)
    if bench is not None and bench.held is not None:
        session.config.add_cleanup(bench.held.close)
    if bench is None or not bench.settings.regen or not bench.runs:
        return
    from bench.measurement.aggregate import regenerate
    from bench.storage.baselines import BaselineError

    if exitstatus != 0:
        bench.notes.append("baselines NOT regenerated: some benchmarks failed")
        return
    root = bench.settings.baselines or layout.default_baselines()
    try:
        path, changes = regenerate(
            bench.runs, root, allow_fewer_seeds=bench.settings.allow_fewer_seeds
        )
    except BaselineError as error:
        bench.notes.append(f"baselines NOT regenerated: {error}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    bench.notes.append(f"regenerated baseline {path}:\n{changes}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the gate's summary (what moved, the baselines chosen, crossings) and notes."""
    bench = config.stash.get(_SESSION, None)
    if bench is None or not (bench.gate.checks or bench.notes or bench.comparison):
        return
    terminalreporter.section("cnnbench regression gate")
    if bench.comparison is not None:
        terminalreporter.write_line("paired comparison with the base, on this machine:")
        terminalreporter.write_line(bench.comparison.summary())
        from bench.gate import SummaryError, append_summary

        try:
            written = append_summary(bench.settings.summary, bench.comparison.markdown())
        except SummaryError as error:
            terminalreporter.write_line(f"WARNING: {error}", red=True)
            written = None
        if written and not bench.gate.checks:
            terminalreporter.write_line(f"Markdown summary appended to {written}")
    if bench.gate.checks:
        from bench.gate import SummaryError

        terminalreporter.write_line(bench.gate.summary())
        try:
            written = bench.gate.write_markdown(bench.settings.summary)
        except SummaryError as error:
            terminalreporter.write_line(f"WARNING: {error}", red=True)
            written = None
        if written:
            terminalreporter.write_line(f"Markdown summary appended to {written}")
    for note in bench.notes:
        terminalreporter.write_line(note)
