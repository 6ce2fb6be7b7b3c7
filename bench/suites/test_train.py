"""Benchmarks: training epochs of every architecture, timed, then gated against baselines.

Run: pytest bench --benchmark-json out.json [--cnnbench-budget=ci] [--cnnbench-seeds=0,1]
The first epoch (tracing, compilation) is pytest-benchmark's warm-up round; the steady-state
epochs are the timed rounds. Evaluation runs between rounds, off the clock.
"""

import pytest

from bench.cli.plugin import extra_info
from bench.storage.baselines import BaselineError
from bench.storage.lock import FolderBusy
from bench.training import plants
from bench.training.trainer import Trainer, default_data


def test_train(benchmark, bench_arch, bench_seed, cnnbench, live_write):
    request = cnnbench.request
    budget = request.budget
    missing = None
    try:
        cnnbench.require_baseline(budget.name)  # fail in seconds, not after training
    except BaselineError as error:
        missing = str(error)
    if missing:  # outside the except block: one message, not a chained pair
        pytest.fail(missing, pytrace=False)
    try:
        folder = cnnbench.run_dir(budget.name, bench_arch, bench_seed)
    except FolderBusy as busy:
        missing = str(busy)
    if missing:
        pytest.fail(missing, pytrace=False)
    benchmark.group = f"train-{budget.name}"
    options = plants.trainer_options(request.plant, default_data())
    with Trainer(bench_arch, budget, bench_seed, out_dir=folder, precision=request.precision,
                 write=live_write, resume=False, eval_every=request.eval_every,
                 **options) as trainer:  # fmt: skip
        benchmark.pedantic(
            trainer.train_epoch,
            setup=trainer.evaluate_epoch,
            rounds=max(budget.epochs - 1, 1),
            warmup_rounds=1 if budget.epochs > 1 else 0,
            iterations=1,
        )
        record = trainer.run_to_end()  # --benchmark-disable runs the target only once
    benchmark.extra_info.update(extra_info(record, request.plant) | {"record": str(folder)})
    cnnbench.runs.append(record)
    if not record.completed:
        pytest.fail(f"{record.label}: training {record.status}: {record.divergence}")
    try:
        checks = cnnbench.gate.check(record)
    except BaselineError as error:
        message = str(error)
    else:
        message = "\n".join(c.message() for c in checks if not c.passed)
    if message:
        pytest.fail(message, pytrace=False)
