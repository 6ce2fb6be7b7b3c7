"""Benchmarks: training epochs of every architecture, timed, then gated against baselines.

Run: pytest bench --benchmark-json out.json [--cnnbench-budget=ci] [--cnnbench-seeds=0,1]
The first epoch (tracing, compilation) is pytest-benchmark's warm-up round; the steady-state
epochs are the timed rounds. Evaluation runs between rounds, off the clock.
"""

import keras
import pytest

from bench import gate, plants, provenance
from bench.budgets import get_budget
from bench.cli import run_dir
from bench.training import Trainer, default_data


def test_train(benchmark, bench_arch, bench_seed, cnnbench, live_write):
    arch_id, seed = bench_arch, bench_seed
    budget = get_budget(cnnbench.budget)
    options = plants.trainer_options(cnnbench.plant, default_data())
    folder = run_dir(cnnbench.out, budget.name, arch_id, seed)
    benchmark.group = f"train-{budget.name}"
    with Trainer(arch_id, budget, seed, out_dir=folder, precision=cnnbench.precision,
                 write=live_write, resume=False, **options) as trainer:  # fmt: skip
        benchmark.pedantic(
            trainer.train_epoch,
            setup=trainer.evaluate_epoch,
            rounds=max(budget.epochs - 1, 1),
            warmup_rounds=1 if budget.epochs > 1 else 0,
            iterations=1,
        )
        while trainer.epochs_left > 0:  # --benchmark-disable runs the target only once
            trainer.train_epoch()
        record = trainer.finish()
    timing, final = record["timing"], record["final"]
    benchmark.extra_info.update(
        {
            "arch": arch_id,
            "seed": seed,
            "budget": budget.as_dict(),
            "samples_per_epoch": record["config"]["train_samples"],
            "samples_per_second": timing["steady_samples_per_second"],
            "test_accuracy": final.get("test_accuracy"),
            "test_loss": final.get("test_loss"),
            "efficiency": timing["efficiency"],
            "achieved_flops": timing["achieved_flops"],
            "peak_flops": timing["peak_flops"],
            "first_epoch_seconds": timing["first_epoch_seconds"],
            "peak_rss_mb": timing["peak_rss_mb"],
            "peak_device_memory_mb": timing["peak_device_memory_mb"],
            "backend": keras.backend.backend(),
            "precision": record["config"]["precision"],
            "device": provenance.device()["name"],
            "plant": cnnbench.plant,
            "record": str(folder / "record.json"),
        }
    )
    cnnbench.records.append(record)
    if record["status"] != "completed":
        pytest.fail(f"{arch_id} seed {seed}: training {record['status']}: {record['divergence']}")
    if cnnbench.regen or cnnbench.gate == "off":
        return
    try:
        resolved = gate.resolve(
            gate.key_of(record), provenance.library_versions(), cnnbench.baselines
        )
    except gate.BaselineError as error:
        pytest.fail(str(error), pytrace=False)
    cnnbench.crossings.update(resolved.crossings)
    checks = gate.check_record(
        record, resolved.document, str(resolved.path), speed=cnnbench.gate == "all"
    )
    cnnbench.checks.extend(checks)
    failed = [c.message() for c in checks if not c.passed]
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)
