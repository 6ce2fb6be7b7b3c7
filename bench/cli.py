"""Command line: `python -m bench run|main ...`.

`run` trains chosen architectures under a budget and seeds and writes one record per run;
`main` is the README's main job (benchmark all six under the default budget, gate, report);
`baseline` aggregates records into a measured baseline; `gate` checks records against one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from archs import NOTEBOOK_IDS, REGISTRY
from bench.budgets import BUDGETS, DEFAULT_BUDGET
from bench.peers import PEERS as PEER_NAMES
from bench.precisions import DEFAULT_PRECISION, PRECISIONS

DEFAULT_OUT = Path("results")


RECORDS_GLOB = "*/*/seed*/record.json"  # every record under a results folder; see run_dir


def run_dir(out: Path, budget: str, arch_id: str, seed: int) -> Path:
    """Return the folder of one run's record: OUT/<budget>/<arch>/seed<seed>."""
    return out / budget / arch_id / f"seed{seed}"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a seed is a non-negative integer, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a non-negative integer, got {value}")
    return value


def _add_training_options(parser: argparse.ArgumentParser, *, archs_default: list[str]) -> None:
    parser.add_argument(
        "--arch",
        nargs="+",
        choices=list(REGISTRY),
        default=archs_default,
        metavar="ID",
        help=f"architecture ids (default: the notebook's six). Valid: {', '.join(REGISTRY)}",
    )
    parser.add_argument(
        "--budget",
        choices=list(BUDGETS),
        default=DEFAULT_BUDGET,
        help=f"named budget (default: {DEFAULT_BUDGET})",
    )
    parser.add_argument("--seeds", nargs="+", type=_seed, default=[0], help="seeds (default: 0)")
    parser.add_argument("--epochs", type=_positive, help="override the budget's epochs")
    parser.add_argument("--train-samples", type=_positive, help="override the training subset")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULT_PRECISION,
        help="Keras dtype policy; auto (default): mixed_bfloat16 for TensorFlow on CPUs with "
        "AVX512_BF16/AMX, else float32 (see README, Speed)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument(
        "--force",
        action="store_true",
        help="train again runs whose folder already holds a completed record of the same "
        "configuration (kept by default; unfinished runs always resume)",
    )
    parser.add_argument("--data", type=Path, help="an mnist.npz or a folder of the IDX .gz files")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for `python -m bench`."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train architectures and write their records")
    _add_training_options(run, archs_default=list(NOTEBOOK_IDS))
    main = commands.add_parser(
        "main", help="the main job: benchmark all six under the default budget, gate, report"
    )
    main.add_argument("--budget", choices=list(BUDGETS), default=DEFAULT_BUDGET)
    main.add_argument("--seeds", nargs="+", type=_seed, default=[0, 1, 2])
    main.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    main.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="further pytest options, after --"
    )
    baseline = commands.add_parser(
        "baseline", help="aggregate completed run records into their measured baseline"
    )
    baseline.add_argument("records", nargs="+", type=Path, help="record.json files")
    baseline.add_argument("--baselines", type=Path, help="baseline folder")
    check = commands.add_parser(
        "gate", help="check run records against their baselines; exit 1 on a regression"
    )
    check.add_argument("records", nargs="+", type=Path, help="record.json files")
    check.add_argument("--baselines", type=Path, help="baseline folder")
    check.add_argument("--accuracy-only", action="store_true", help="skip the speed check")
    peers = commands.add_parser("peers", help="the harness against other ways to train, one run")
    peers.add_argument(
        "--arch", nargs="+", choices=list(REGISTRY), default=["model_1_a", "model_3_a"]
    )
    peers.add_argument("--samples", type=_positive, default=4096, help="training images")
    peers.add_argument("--epochs", type=_positive, default=3, help="epochs (first untimed)")
    peers.add_argument("--out", type=Path, default=DEFAULT_OUT / "peers.json")
    peers.add_argument(
        "--peers",
        nargs="+",
        choices=PEER_NAMES,
        default=list(PEER_NAMES),
        help="which peers to run (default: all)",
    )
    report = commands.add_parser("report", help="figures and report.md from run records")
    report.add_argument("records", nargs="+", type=Path, help="record.json files")
    report.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT / "report")
    return parser


def _load_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    from bench import records

    return [records.load(path) for path in paths]


def cmd_baseline(args: argparse.Namespace) -> int:
    """Aggregate records into baselines (one file per key); print what changed."""
    from bench import gate

    documents = _load_records(args.records)
    groups: dict[Any, list[dict[str, Any]]] = {}
    for document in documents:
        groups.setdefault(gate.key_of(document), []).append(document)
    for group in groups.values():
        path, changes = gate.regenerate(group, args.baselines or gate.env_root())
        print(f"wrote {path}\n{changes}")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    """Check records against baselines; print the table; 1 on a regression, 2 if unusable."""
    from bench import gate

    checks, crossings = [], set()
    try:
        for document in _load_records(args.records):
            resolved = gate.resolve(
                gate.key_of(document),
                document["provenance"]["versions"],
                args.baselines or gate.env_root(),
            )
            crossings.update(resolved.crossings)
            checks += gate.check_record(
                document, resolved.document, str(resolved.path), speed=not args.accuracy_only
            )
    except (gate.BaselineError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(gate.table(checks))
    for crossing in sorted(crossings):
        print(f"NOTE: comparison crosses {crossing}")
    failed = [c for c in checks if not c.passed]
    for check in failed:
        print(check.message(), file=sys.stderr)
    print(f"{len(failed)} regression(s) in {len(checks)} checks")
    return 1 if failed else 0


def cmd_main(args: argparse.Namespace) -> int:
    """Benchmark all six (pytest bench, with the gate), then write the report."""
    import pytest

    out: Path = args.out
    seeds = ",".join(str(s) for s in args.seeds)
    extra = [a for a in args.pytest_args if a != "--"]
    if args.budget != DEFAULT_BUDGET and not any(a.startswith("--cnnbench-gate") for a in extra):
        print(f"note: baselines are stored for the {DEFAULT_BUDGET} budget; gate off for "
              f"{args.budget} (pass -- --cnnbench-gate=all to gate against your own)")  # fmt: skip
        extra.append("--cnnbench-gate=off")
    status = pytest.main(
        [
            str(Path(__file__).resolve().parent),
            f"--cnnbench-budget={args.budget}",
            f"--cnnbench-seeds={seeds}",
            f"--cnnbench-out={out / 'runs'}",
            f"--benchmark-json={out / 'benchmark.json'}",
            *extra,
        ]
    )
    report = _report(out)
    print(f"benchmark JSON: {out / 'benchmark.json'}; records: {out / 'runs'}; report: {report}")
    return int(status)


def _report(out: Path) -> Path:
    from bench import report

    records_found = sorted((out / "runs").glob(RECORDS_GLOB))
    return report.write_report(records_found, out / "report")


def train_many(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train every (architecture, seed) the arguments name; return their records."""
    from bench import training
    from bench.budgets import get_budget
    from bench.data import load_mnist

    budget = get_budget(args.budget, epochs=args.epochs, train_samples=args.train_samples)
    data = load_mnist(args.data) if args.data else training.default_data()
    done = []
    for arch_id in args.arch:
        for seed in args.seeds:
            folder = run_dir(args.out, budget.name, arch_id, seed)
            done.append(
                training.train_run(
                    arch_id,
                    budget,
                    seed,
                    out_dir=folder,
                    precision=args.precision,
                    data=data,
                    keep_completed=not args.force,
                )
            )
            print(f"wrote {folder / training.RECORD}", flush=True)
    return done


def summary_table(documents: Sequence[dict[str, Any]]) -> str:
    """Return a plain-text table of runs: accuracy, loss, throughput, status."""
    rows = []
    for doc in documents:
        timing, final = doc["timing"], doc["final"]
        sps = timing.get("steady_samples_per_second")
        rows.append(
            [
                doc["arch"]["id"],
                doc["config"]["budget"]["name"],
                doc["config"]["seed"],
                doc["status"],
                final.get("test_accuracy"),
                final.get("test_loss"),
                timing.get("first_epoch_seconds"),
                timing.get("steady_epoch_seconds"),
                round(sps) if sps else None,
            ]
        )
    headers = ["arch", "budget", "seed", "status", "test acc", "test loss", "epoch 1 s",
               "steady epoch s", "samples/s"]  # fmt: skip
    return tabulate(rows, headers=headers, floatfmt=".4f")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if args.command == "baseline":
        return cmd_baseline(args)
    if args.command == "gate":
        return cmd_gate(args)
    if args.command == "main":
        return cmd_main(args)
    if args.command == "peers":
        from bench import peers

        if args.epochs < 2:
            print("error: --epochs must be >= 2 (the first epoch compiles and is not timed)")
            return 2
        peers.run_all(args.arch, args.samples, args.epochs, args.out, tuple(args.peers))
        return 0
    if args.command == "report":
        from bench import report

        print(f"wrote {report.write_report(args.records, args.out)}")
        return 0
    documents = train_many(args)
    print(summary_table(documents))
    return 1 if any(doc["status"] != "completed" for doc in documents) else 0


if __name__ == "__main__":
    sys.exit(main())
