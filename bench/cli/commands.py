"""Command line: `python -m bench run|study|main|baseline|gate|compare|report|history|peers|pins`.

`run` trains chosen architectures under a budget and seeds, in this process, and writes one
record per run; `study` runs a grid of them as independent runs on an executor (local or
Ray), then writes the report (and, when asked, the baseline); `main` is the README's main
job (a local study of all six, sized to about 15 minutes on this machine, gate, report);
`baseline` aggregates records into a measured baseline; `gate` checks records against their
baselines (the same workflow as `pytest bench`); `compare` trains a base (a git ref, another
Python environment) and the head on this machine, interleaved, and tests their step times
(`bench.compare`); `report` draws the figures; `history` draws
the results saved by commit and finds change points; `peers` times the harness against other
ways to train; `pins` checks the installed versions against `constraints.txt`. Options are
declared once in `bench.cli.options`.

Expected errors (bad input, a missing baseline, unusable data) print one sentence and exit
with status 2 (1 means a regression); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.budgets import BASELINE_SEEDS
from bench.cli.options import (
    COMPARISON,
    TRAINING,
    OptionError,
    Settings,
    add_options,
    positive,
)
from bench.storage import layout, lock

"""The seeds the main job picks from: as many as its estimate fits in --minutes."""
PEER_ARCHS = ("model_1_a", "model_3_a")
"""The peer benchmark's default architectures: the smallest and a large one."""
SUITES = Path(__file__).resolve().parents[1] / "suites"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for `python -m bench`."""
    from bench.cli.peers import PEERS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train architectures and write their records")
    add_options(run.add_argument, (*TRAINING, "out", "force"))
    study = commands.add_parser(
        "study", help="a grid of runs on an executor (local or ray), then the report"
    )
    add_options(study.add_argument, (*TRAINING, "precisions", "out", "executor", "address",
                                     "cpus-per-run", "gpus-per-run", "retries", "baseline",
                                     "baselines", "no-estimate"))  # fmt: skip
    main = commands.add_parser(
        "main", help="the main job: a local study of all six (about 15 minutes), gate, report"
    )
    add_options(main.add_argument, (*TRAINING, "minutes", "out", "gate", "baselines"))
    baseline = commands.add_parser(
        "baseline", help="aggregate completed run records into their measured baseline"
    )
    baseline.add_argument("records", nargs="+", type=Path, help="record.json files")
    add_options(baseline.add_argument, ("baselines", "allow-fewer-seeds"))
    add_options(study.add_argument, ("allow-fewer-seeds",))
    gate = commands.add_parser(
        "gate", help="check run records against their baselines; exit 1 on a regression"
    )
    gate.add_argument("records", nargs="+", type=Path, help="record.json files")
    add_options(gate.add_argument, ("baselines", "gate", "summary"))
    gate.add_argument(
        "--accuracy-only", action="store_const", const="accuracy", dest="gate",
        help="same as --gate accuracy",
    )  # fmt: skip
    compare = commands.add_parser(
        "compare", help="base against head on this machine: paired, interleaved step times"
    )
    add_options(compare.add_argument, (*TRAINING, "out", "baselines", "summary", *COMPARISON))
    bisect = commands.add_parser(
        "bisect", help="find the first commit slower than GOOD: paired comparisons, bisected"
    )
    add_options(bisect.add_argument, ("good", "bad", *TRAINING, "out", "baselines", "threshold",
                                      "block"))  # fmt: skip
    peers = commands.add_parser("peers", help="the harness against other ways to train, one run")
    add_options(peers.add_argument, ("archs", "out"))
    peers.add_argument("--samples", type=positive, default=4096, help="training images")
    peers.add_argument("--epochs", type=positive, default=3, help="epochs (first untimed)")
    peers.add_argument(
        "--peers", nargs="+", choices=PEERS, default=list(PEERS), help="peers (default: all)"
    )
    peers.add_argument("--peer-limit", type=positive, default=1800,
                       help="seconds of its own work each peer gets per architecture (default "
                       "1800); one over it is stopped and reported")  # fmt: skip
    history = commands.add_parser(
        "history", help="trends and change points across commits, from saved benchmark runs"
    )
    history.add_argument(
        "folders", nargs="*", type=Path,
        help="pytest-benchmark storage folders or files (default results/history)",
    )  # fmt: skip
    history.add_argument(
        "--against", default="previous",
        help="compare the latest commit with: previous, best, or a commit hash",
    )  # fmt: skip
    history.add_argument("-o", "--out", type=Path, help="figures folder (default results/report)")
    pins = commands.add_parser("pins", help="check the installed versions against the pins")
    pins.add_argument("constraints", nargs="?", type=Path, default=Path("constraints.txt"))
    report = commands.add_parser("report", help="figures and report.md from run records")
    report.add_argument("records", nargs="+", type=Path, help="record.json files")
    report.add_argument("-o", "--out", type=Path, help="report folder (default results/report)")
    return parser


def _settings(args: argparse.Namespace, **defaults: Any) -> Settings:
    return Settings.parse(lambda dest: getattr(args, dest, None), **defaults)


def _use_backend(settings: Settings) -> None:
    """Fix the Keras backend before anything imports Keras."""
    if settings.backend:
        os.environ["KERAS_BACKEND"] = settings.backend


def summary_table(documents: Sequence[Any]) -> str:
    """Return a plain-text table of runs: accuracy, loss, throughput, status."""
    from tabulate import tabulate

    from bench.measurement import metrics

    rows = []
    for record in documents:
        derived = metrics.of(record)
        sps = derived.median_samples_per_second
        rows.append([
            record.arch.id, record.config.budget.name, record.config.seed, record.status,
            derived.test_accuracy, derived.test_loss, derived.first_epoch_seconds,
            derived.median_epoch_seconds, round(sps) if sps else None,
        ])  # fmt: skip
    headers = ["arch", "budget", "seed", "status", "test acc", "test loss", "epoch 1 s",
               "median epoch s", "median samples/s"]  # fmt: skip
    return tabulate(rows, headers=headers, floatfmt=("", "", "", "", ".4f", ".4f", ".1f", ".1f"))


def cmd_run(args: argparse.Namespace) -> int:
    """Train every (architecture, seed) asked for; print a table; 1 if any did not complete."""
    settings = _settings(args)
    _use_backend(settings)
    from bench.data import load_mnist
    from bench.training import trainer as training
    from bench.training.precisions import resolve
    from bench.training.runfolder import migrate_legacy

    request = settings.request()
    data = load_mnist(request.data) if request.data else training.default_data()
    results = layout.Results(settings.out)
    with lock.writer(results.root):
        migrate_legacy(results, print)
        variant = layout.variant(request.backend, resolve(request.precision))
        done = []
        for arch_id in request.archs:
            for seed in request.seeds:
                folder = results.run_dir(request.budget.name, arch_id, seed, variant)
                done.append(
                    training.train_run(arch_id, request.budget, seed, out_dir=folder,
                                       precision=request.precision, data=data,
                                       keep_completed=not settings.force,
                                       resume=not settings.force,
                                       eval_every=request.eval_every)
                )  # fmt: skip
                print(f"wrote {folder / layout.RECORD_FILE}", flush=True)
    print(summary_table(done))
    return 1 if any(not record.completed for record in done) else 0


def _command_line() -> str:
    return " ".join(["python -m bench", *sys.argv[1:]])


def _estimate(plan: Any, results: layout.Results) -> Any:
    """Probe this machine and estimate each run (a kept run costs only its start-up)."""
    from bench.study import estimate as estimating
    from bench.study.executors import existing

    backend = plan.runs[0].backend
    found = estimating.probe(backend, list(dict.fromkeys(r.arch for r in plan.runs)),
                             list(dict.fromkeys(r.precision for r in plan.runs)))  # fmt: skip
    trained = {}
    for spec in plan.runs:
        record = existing(spec.folder(results))
        if record is not None:
            trained[spec] = record.config.budget.epochs if record.completed else len(record.epochs)
    return estimating.estimate(plan.runs, found, trained), found


def _say_estimate(guess: Any, found: Any) -> None:
    from bench.study.estimate import clock

    fixed = found.startup_seconds + found.run_seconds
    print(f"estimate: ~{clock(guess.total)} on this machine (a {found.seconds:.0f} s probe "
          f"timed each architecture's training steps and evaluation, and {fixed:.1f} s a run "
          f"pays besides them; matmul peak {found.peaks['float32'] / 1e9:.0f} GFLOP/s float32, "
          f"{found.peaks['bfloat16'] / 1e9:.0f} bfloat16)")  # fmt: skip


def _executor(settings: Settings) -> Any:
    from bench.study import executors

    if settings.executor == "ray":
        executors.import_ray()  # says how to install it, before anything starts
        return executors.RayExecutor(settings.address, settings.cpus_per_run,
                                     settings.gpus_per_run, settings.retries)  # fmt: skip
    return executors.LocalExecutor()


def _study(settings: Settings, plan: Any, executor: Any, estimate: Any = None) -> list[Any]:
    """Run a planned study; print its table; return its outcomes."""
    from bench.study.runner import run_study, table

    results = layout.Results(settings.out)
    outcomes = run_study(plan, executor, results, estimate)
    print(table(outcomes, estimate))
    return outcomes


def cmd_study(args: argparse.Namespace) -> int:
    """Run a grid of runs on an executor; write the report (and the baseline when asked)."""
    from bench.measurement import aggregate
    from bench.report import document as report
    from bench.study.plan import Plan
    from bench.training.runfolder import migrate_legacy

    settings = _settings(args)
    _use_backend(settings)
    plan = Plan.of(settings.request(), settings.precisions, _command_line())
    executor = _executor(settings)
    results = layout.Results(settings.out)
    results.runs.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now
    with lock.writer(results.root):
        migrate_legacy(results, print)
        print(f"study: {plan.describe()}; executor {settings.executor}; results "
              f"{results.root}")  # fmt: skip
        estimate = None
        if settings.executor == "local" and not settings.no_estimate:
            estimate, found = _estimate(plan, results)
            _say_estimate(estimate, found)
        outcomes = _study(settings, plan, executor, estimate)
    done = [o for o in outcomes if o.record is not None]
    paths = [o.spec.folder(results) / layout.RECORD_FILE for o in done]
    if paths:
        print(f"report: {report.write_report(paths, results.report_dir)}")
    if settings.baseline:
        completed = [o.record for o in done if o.record.completed]
        root = settings.baselines or layout.default_baselines()
        path, changes = aggregate.regenerate(
            completed, root, allow_fewer_seeds=settings.allow_fewer_seeds
        )
        print(f"wrote {path}\n{changes}")
    return 0 if all(o.status in ("completed", "kept") for o in outcomes) else 1


def _baseline_command(settings: Settings) -> str:
    """Return the study that makes the baseline this main job needs, with its options."""
    from bench.training.backends import requested

    backend = settings.backend or requested()
    return (f"python -m bench study --budget {settings.budget} --archs "
            f"{','.join(settings.archs)} --seeds {','.join(map(str, BASELINE_SEEDS))} --backend "
            f"{backend} --precision "
            f"{settings.precision} --baseline"
            + (f" --baselines {settings.baselines}" if settings.baselines else ""))  # fmt: skip


def cmd_main(args: argparse.Namespace) -> int:
    """Run the main job: a local study of all six, sized to --minutes; the gate; the report.

    Without --seeds it takes as many of seeds 0-4 as the estimate fits in --minutes (at
    least one), and says so: about 15 minutes on either of the project's machine kinds.
    """
    import dataclasses

    from bench.gate import Gate
    from bench.report import document as report
    from bench.study.estimate import seeds_that_fit
    from bench.study.plan import Plan

    settings = _settings(args)
    _use_backend(settings)
    results = layout.Results(settings.out)
    from bench.training.runfolder import migrate_legacy

    migrate_legacy(results, print)
    chosen = args.seeds is not None
    grid = settings if chosen else dataclasses.replace(settings, seeds=BASELINE_SEEDS)
    plan = Plan.of(grid.request(), command=_command_line())
    gate_mode = settings.gate
    root = settings.baselines or layout.default_baselines()
    if args.gate is None and not layout.baseline_files(root, settings.request().budget.name):
        print(f"note: no stored baseline for the {settings.budget} budget under {root}; gate "
              "off (pass --gate all to gate against one of your own)")  # fmt: skip
        gate_mode = "off"
    gate = Gate(root, gate_mode, regen_hint=_baseline_command(settings))
    # A missing baseline fails now, before the probe and the study.
    gate.require_here(plan.budget.name, plan.runs[0].backend, settings.precision)
    estimate, found = _estimate(plan, results)
    if not chosen:
        seeds = seeds_that_fit(estimate, BASELINE_SEEDS, settings.minutes * 60)
        settings = dataclasses.replace(settings, seeds=seeds)
        plan = plan.with_seeds(seeds)
        estimate = estimate.of(plan.runs)
        print(f"main: {len(seeds)} seed(s), as many of {len(BASELINE_SEEDS)} as the estimate fits "
              f"in {settings.minutes:g} minutes on this machine (--seeds or --minutes for "
              f"more)")  # fmt: skip
    results.runs.mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now
    print(f"main: {plan.describe()}; results {results.root}")
    _say_estimate(estimate, found)
    with lock.writer(results.root):
        outcomes = _study(settings, plan, _executor(settings), estimate)
    paths = [o.spec.folder(results) / layout.RECORD_FILE for o in outcomes if o.record]
    written = report.write_report(paths, results.report_dir) if paths else None
    for outcome in outcomes:
        if outcome.record is not None and outcome.record.completed:
            gate.check(outcome.record)
    if gate_mode != "off":
        print(gate.summary())
    print(f"records: {results.runs}; report: {written}")
    failed = gate.failed or any(o.status not in ("completed", "kept") for o in outcomes)
    return 1 if failed else 0


def _load(paths: Sequence[Path]) -> list[Any]:
    from bench.storage import records

    return [records.load(path) for path in paths]


def cmd_baseline(args: argparse.Namespace) -> int:
    """Aggregate records into their baseline; print what changed."""
    from bench.measurement import aggregate

    settings = _settings(args)
    root = settings.baselines or layout.default_baselines()
    path, changes = aggregate.regenerate(
        _load(args.records), root, allow_fewer_seeds=settings.allow_fewer_seeds
    )
    print(f"wrote {path}\n{changes}")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    """Check records against their baselines; print the summary; 1 on a regression."""
    from bench.gate import Gate

    settings = _settings(args)
    gate = Gate(settings.baselines or layout.default_baselines(), settings.gate)
    for record in _load(args.records):
        gate.check(record)
    print(gate.summary())
    _summarise(lambda: gate.write_markdown(settings.summary))
    for check in gate.failed:
        print(check.message(), file=sys.stderr)
    return 1 if gate.failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare a base with the head, interleaved on this machine; 1 on a slowdown."""
    from bench.compare.session import compare
    from bench.gate import append_summary

    settings = _settings(args)
    comparison = compare(settings.request(), settings.comparison())
    print(comparison.summary())
    print(f"JSON: {layout.Results(settings.out).comparison_json}")
    _summarise(lambda: append_summary(settings.summary, comparison.markdown()))
    return comparison.exit_code


def cmd_bisect(args: argparse.Namespace) -> int:
    """Bisect between --good and --bad; 0 with the culprit, 2 when it cannot tell."""
    from bench.compare.bisect import bisect

    settings = _settings(args)
    result = bisect(settings.request(), settings.comparison(), settings.good, settings.bad)
    print(result.summary())
    print(f"JSON: {layout.Results(settings.out).bisection_json}")
    return result.exit_code


def _summarise(write: Any) -> None:
    """Write a Markdown summary; say where, or say on stderr why not (the verdict stands)."""
    from bench.gate import SummaryError

    try:
        written = write()
    except SummaryError as error:
        print(f"warning: {error}", file=sys.stderr)
        return
    if written:
        print(f"Markdown summary appended to {written}")


def cmd_peers(args: argparse.Namespace) -> int:
    """Run the peer benchmark; 1 when a peer failed or ran over its limit (skipped: fine)."""
    from bench.cli import peers

    settings = _settings(args, archs=list(PEER_ARCHS))
    if args.epochs < 2:
        raise OptionError("--epochs must be >= 2 (the first epoch compiles and is not timed)")
    results = layout.Results(settings.out)
    rows = peers.run_all(list(settings.archs), args.samples, args.epochs, results,
                         tuple(args.peers), args.peer_limit)  # fmt: skip
    failed = [r for r in rows if "error" in r and not r.get("skipped")]
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report."""
    from bench.report import document as report

    out = args.out or layout.Results().report_dir
    print(f"wrote {report.write_report(args.records, out)}")
    groups, problems = report.group_records(args.records)
    if not groups:  # the report says why; the exit status says there is nothing in it
        for problem in problems:
            print(f"note: {problem}", file=sys.stderr)
        print(f"error: none of the {len(args.records)} record(s) could be read: the report "
              "holds no results", file=sys.stderr)  # fmt: skip
        return 2
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Draw each architecture's trend across commits; print change points and a comparison."""
    from bench.report import figures, history

    folders = args.folders or [layout.Results().history]
    commits, problems = history.load(folders)
    for problem in problems:
        print(f"note: {problem}")
    if not commits:
        raise OptionError(f"no cnnbench results by commit under {', '.join(map(str, folders))}; "
                          "save some with pytest bench --benchmark-autosave")  # fmt: skip
    out = args.out or layout.Results().report_dir
    missing = history.available()
    points = [] if missing else history.change_points(commits)
    for arch in history.archs(commits):
        path = out / f"history_{arch}.png"
        figures.save(history.figure(commits, arch, points), path)
        print(f"wrote {path}")
    print(f"{len(commits)} commits, {commits[0].id[:7]} .. {commits[-1].id[:7]}")
    for point in points:
        print(f"CHANGE POINT ({point.kind}): {point.arch} {point.metric} at "
              f"{point.commit[:7]}: {point.before:.4g} -> {point.after:.4g} "
              f"({point.relative:+.1%}, p = {point.p_value:.2g})")  # fmt: skip
    if missing:
        print(f"note: no change points looked for: {missing}")
    elif not points:
        print("no change point")
    print(history.compare(commits, args.against))
    return 0


KEY_LIBRARIES = ("tensorflow", "keras", "jax", "jaxlib", "torch", "numpy", "pytest",
                 "pytest-benchmark")  # fmt: skip


def cmd_pins(args: argparse.Namespace) -> int:
    """Show the key pinned versions; exit 1 if anything installed differs from its pin."""
    from bench.cli import pins

    found = pins.check(args.constraints)
    wrong = [p for p in found if not p.ok]
    shown = [p for p in found if p.name.lower() in KEY_LIBRARIES]
    print("pinned and installed: " + ", ".join(f"{p.name}=={p.installed}" for p in shown
                                              if p.installed))  # fmt: skip
    print(f"{len(found) - len(wrong)}/{len(found)} pins match ({args.constraints})")
    for pin in wrong:
        print(f"MISMATCH: {pin.name} pinned {pin.pinned}, installed {pin.installed}",
              file=sys.stderr)  # fmt: skip
    return 1 if wrong else 0


COMMANDS = {
    "run": cmd_run,
    "study": cmd_study,
    "main": cmd_main,
    "baseline": cmd_baseline,
    "gate": cmd_gate,
    "compare": cmd_compare,
    "bisect": cmd_bisect,
    "peers": cmd_peers,
    "report": cmd_report,
    "history": cmd_history,
    "pins": cmd_pins,
}


def expected_errors() -> tuple[type[BaseException], ...]:
    """Return the errors that are the user's to fix: one sentence each, no traceback."""
    from bench.compare.sides import CompareError
    from bench.data import DataIntegrityError, MnistUnavailableError
    from bench.storage.baselines import BaselineError
    from bench.storage.lock import FolderBusy
    from bench.storage.records import RecordError

    return (OptionError, RecordError, BaselineError, MnistUnavailableError,
            DataIntegrityError, CompareError, FolderBusy, ValueError, OSError)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 regression or failed run, 2 error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Exception as error:
        if args.debug or not isinstance(error, expected_errors()):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
