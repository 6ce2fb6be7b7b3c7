"""Command line: `python -m bench run|main ...`.

`run` trains chosen architectures under a budget and seeds and writes one record per run;
`main` is the README's main job: all six architectures under the default budget.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from archs import REGISTRY
from bench.budgets import BUDGETS, DEFAULT_BUDGET

DEFAULT_OUT = Path("results")


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
    from bench.training import PRECISIONS

    parser.add_argument(
        "--arch",
        nargs="+",
        choices=list(REGISTRY),
        default=archs_default,
        metavar="ID",
        help=f"architecture ids (default: all). Valid: {', '.join(REGISTRY)}",
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
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--data", type=Path, help="an mnist.npz or a folder of the IDX .gz files")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for `python -m bench`."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train architectures and write their records")
    _add_training_options(run, archs_default=list(REGISTRY))
    main = commands.add_parser("main", help="the main job: all six under the default budget")
    _add_training_options(main, archs_default=list(REGISTRY))
    return parser


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
    documents = train_many(args)
    print(summary_table(documents))
    return 1 if any(doc["status"] != "completed" for doc in documents) else 0


if __name__ == "__main__":
    sys.exit(main())
