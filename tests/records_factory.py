"""Valid run records for tests that need no training, built with the trainer's constructors."""

from archs import REGISTRY
from bench.measurement import metrics
from bench.storage.records import (
    ArchInfo,
    BudgetInfo,
    Config,
    Device,
    Epoch,
    Final,
    Provenance,
    RunRecord,
    Timing,
    Weights,
)


def make_record(
    arch_id="model_1_a",
    seed=0,
    acc=0.95,
    loss=0.2,
    epochs=3,
    budget="ci",
    model_file=None,
    precision="float32",
    train_samples=4096,
    epoch_seconds=1.0,
    efficiency=0.5,
    device="Intel(R) Xeon(R) Processor",
    versions=None,
    status="completed",
    target=None,
    val_accuracies=None,
    concurrent_runs=None,
    step_seconds=None,
    eval_seconds=0.1,
):
    """Return a record of `epochs` epochs: the first compiling (3 s), the rest `epoch_seconds`.

    The FLOP count is set so that the run's efficiency (fastest steady epoch) is `efficiency`.
    With `target`, the record carries its time to that test accuracy (`val_accuracies`, one
    per epoch, say when it is reached). With `step_seconds`, every epoch measured its steps
    (record v5): that median wall time, and 1.7 times as much process CPU time.
    """
    spec = REGISTRY[arch_id]
    config = Config(
        budget=BudgetInfo(budget, epochs, train_samples, 2000, "test budget"),
        seed=seed, batch_size=128, eval_batch_size=1024, optimizer="adam",
        learning_rate=0.001, precision=precision, train_samples=train_samples,
        test_samples=2000,
    )  # fmt: skip
    provenance = Provenance(
        versions=versions if versions is not None else {"keras": "3.0", "tensorflow": "2.0"},
        backend="tensorflow", device=Device("cpu", device), precision=precision,
        data_digest="0" * 64, started_at=f"2026-11-25T00:00:0{seed % 10}+00:00",
        command="pytest bench", seed=seed, git_commit="abc", concurrent_runs=concurrent_runs,
    )  # fmt: skip
    arch = ArchInfo(arch_id, spec.section, spec.params, spec.conv_layers, spec.dropout,
                    spec.batch_norm)  # fmt: skip
    record = RunRecord.start(arch, config, provenance)
    for e in range(1, epochs + 1):
        record = record.with_epoch(
            Epoch(epoch=e, loss=1.0 / e, accuracy=max(acc - 0.1 / e, 0.0), val_loss=0.9 / e,
                  val_accuracy=(val_accuracies or [max(acc - 0.05 / i, 0.0)
                                                   for i in range(1, epochs + 1)])[e - 1],
                  train_seconds=3.0 if e == 1 else epoch_seconds, eval_seconds=eval_seconds,
                  compiled=e == 1, step_seconds=step_seconds,
                  step_cpu_seconds=1.7 * step_seconds if step_seconds else None)
        )  # fmt: skip
    if status == "running":
        return record
    peak = 1e9
    flops = efficiency * peak * epoch_seconds / train_samples
    timing = Timing(training_flops_per_sample=flops, peak_flops=peak, peak_dtype="float32",
                    peaks={"float32": peak}, peak_rss_mb=1536.0)  # fmt: skip
    reached = metrics.time_to_target(record, target) if target is not None else None
    final = Final(test_loss=loss, test_accuracy=acc)
    return record.finished(timing, Weights(file=model_file), final, time_to_target=reached)
