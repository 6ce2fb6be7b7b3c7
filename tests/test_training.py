"""Training runs: determinism, resume after a real kill, divergence, records, budgets, CLI."""

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from bench.budgets import BUDGETS, Budget
from bench.data import MNIST
from bench.measurement import metrics
from bench.measurement.provenance import accelerator
from bench.storage import records
from bench.training.clock import TrainingClock
from bench.training.precisions import resolve
from bench.training.trainer import Trainer, steady_medians, train_run

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def history(record):
    return [[getattr(epoch, key) for key in METRICS] for epoch in record.epochs]


def quiet(line):
    pass


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    return train_run("model_1_b", "smoke", 0, out_dir=out, write=quiet), out


def test_same_seed_same_history_and_other_seed_differs(smoke_run):
    first, _ = smoke_run
    again = train_run("model_1_b", "smoke", 0, write=quiet)
    other = train_run("model_1_b", "smoke", 1, write=quiet)
    assert history(again) == history(first)
    assert history(other) != history(first)
    assert first.final == again.final


def test_record_is_complete_and_valid(smoke_run):
    _, out = smoke_run
    loaded = records.load(out / "record.json")
    assert loaded.status == "completed"
    assert loaded.arch.params == 124_682
    assert len(loaded.epochs) == BUDGETS["smoke"].epochs
    assert loaded.epochs[0].compiled and not loaded.epochs[1].compiled
    assert loaded.final.test_accuracy == pytest.approx(loaded.epochs[-1].val_accuracy)
    prov = loaded.provenance
    assert prov.versions["keras"] == keras.__version__
    assert prov.backend == keras.backend.backend()
    assert prov.seed == 0 and prov.precision == resolve("auto") != "auto"
    assert loaded.config.precision == prov.precision
    assert prov.data_digest == MNIST.fingerprint()
    timing = loaded.timing
    assert timing.peak_rss_mb > 100
    # Device memory is reported on a GPU (every backend) and nowhere else.
    assert (timing.peak_device_memory_mb is not None) == (accelerator() is not None)
    assert set(timing.peaks) >= {"float32", "bfloat16"}
    assert timing.peak_flops == timing.peaks[timing.peak_dtype]
    assert metrics.of(loaded).efficiency > 0
    for epoch in loaded.epochs:  # every epoch timed its steps (the first after its warm-up)
        assert 0 < epoch.step_seconds < epoch.train_seconds and epoch.step_cpu_seconds >= 0
    names = [layer.name for layer in loaded.weights.layers]
    assert names == ["conv1", "conv2", "conv3", "predictions"]
    assert all(sum(layer.histogram.counts) == layer.count for layer in loaded.weights.layers)
    model = keras.models.load_model(out / loaded.weights.file)
    assert model.count_params() == 124_682
    assert not list(out.glob("checkpoint*.keras"))  # the finished model replaced every checkpoint


HANG_AT_EPOCH = 3
CHILD = """
import sys, time, keras
from pathlib import Path
from bench.budgets import get_budget
from bench.training.trainer import train_run

marker = Path(sys.argv[2])


class HangBeforeEpoch(keras.callbacks.Callback):
    # Each epoch is one fit(): hang at the start of the N-th, after N-1 epochs are on disk.
    fits = 0

    def on_train_begin(self, logs=None):
        HangBeforeEpoch.fits += 1
        if HangBeforeEpoch.fits == int(sys.argv[3]):
            marker.write_text("hanging")
            time.sleep(3600)


budget = get_budget("smoke", epochs=4, train_samples=1024)
hang = [HangBeforeEpoch()] if sys.argv[3] != "0" else []
train_run("model_1_b", budget, 0, out_dir=sys.argv[1], callbacks=hang)
"""


def _child(folder, marker, hang_at):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", CHILD, str(folder), str(marker), str(hang_at)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def test_resume_after_a_real_kill_gives_the_uninterrupted_history(tmp_path):
    """Killed (SIGKILL) at a chosen moment, not after a guessed time: fast or slow machine."""
    whole, killed, marker = tmp_path / "whole", tmp_path / "killed", tmp_path / "hanging"
    uninterrupted = _child(whole, marker, 0)
    assert uninterrupted.communicate(timeout=600) and uninterrupted.returncode == 0
    child = _child(killed, marker, HANG_AT_EPOCH)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert child.poll() is None, child.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the child never reached the planted hang"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate(timeout=60)
    partial = records.load(killed / "record.json")
    assert partial.status == "running" and len(partial.epochs) == HANG_AT_EPOCH - 1
    resumed = _child(killed, tmp_path / "unused", 0)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    assert f"after epoch {HANG_AT_EPOCH - 1}" in stderr
    reference, final = records.load(whole / "record.json"), records.load(killed / "record.json")
    assert final.status == "completed"
    assert history(final) == history(reference)
    assert final.final == reference.final


class Poison(keras.callbacks.Callback):
    """A planted fault: the weights turn to NaN after the second batch."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            layer = self.model.get_layer("predictions")
            layer.kernel.assign(np.full(layer.kernel.shape, np.nan, dtype="float32"))


def test_divergence_stops_the_run_and_is_recorded(tmp_path):
    document = train_run(
        "model_1_a", "smoke", 0, out_dir=tmp_path, callbacks=[Poison()], write=quiet
    )
    assert document.status == "diverged"
    assert (document.divergence.epoch, document.divergence.batch) == (1, 3)
    assert document.epochs == () and document.final is None
    assert records.load(tmp_path / "record.json").status == "diverged"


def test_divergence_can_raise(tmp_path):
    from bench.training.trainer import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="model_1_a"):
        train_run(
            "model_1_a", "smoke", 0, callbacks=[Poison()], write=quiet, raise_on_divergence=True
        )


def test_a_different_configuration_does_not_resume(tmp_path, smoke_run):
    _, out = smoke_run
    with pytest.raises(ValueError, match="another configuration"):
        train_run("model_1_b", "smoke", 5, out_dir=out, write=quiet)


def test_the_clock_times_steps_end_to_end_and_leaves_its_hooks_off():
    """What runs between two steps is on the next step's clock; a hook's wait is on none."""
    clock = TrainingClock()
    waited = []
    clock.between_steps(lambda batch: waited.append(time.sleep(0.05)))
    clock.start_epoch()
    clock.on_epoch_begin(0)
    for batch in range(4):
        time.sleep(0.02 if batch == 2 else 0.0)  # work before the batch: a fetch, a callback
        clock.on_train_batch_begin(batch)
        clock.on_train_batch_end(batch)
    time.sleep(0.01)  # an on_epoch_end callback: on the epoch's clock
    clock.on_epoch_end(0)
    time.sleep(0.03)  # fit's teardown: off it
    seconds = clock.stop_epoch()
    epoch = clock.current
    assert len(waited) == 4 and epoch.off_seconds >= 0.2
    assert epoch.wall[2] >= 0.02 and max(epoch.wall[:2] + epoch.wall[3:]) < 0.02
    assert 0.03 <= seconds < 0.2 and epoch.teardown_seconds >= 0.03
    assert seconds == pytest.approx(epoch.setup_seconds + sum(epoch.wall) + epoch.end_seconds,
                                    abs=1e-3)  # fmt: skip


def test_steady_medians_leave_out_warm_up_steps_and_a_partial_last_batch():
    clock = TrainingClock()
    clock.start_epoch()
    clock.current.wall[:] = [1.0, 0.5, 0.03, 0.04, 0.9]
    clock.current.cpu[:] = [1.0, 0.5, 0.06, 0.08, 0.9]
    assert steady_medians(clock.current, skip=2, partial=True) == (0.035, pytest.approx(0.07))
    assert steady_medians(clock.current, skip=5, partial=False) == (None, None)


def test_an_evaluation_is_timed_to_its_end_not_its_teardown():
    clock = TrainingClock()
    with clock.evaluation():
        time.sleep(0.02)
        clock.on_test_end()
        time.sleep(0.05)
    with clock.evaluation():  # without the clock among evaluate's callbacks: to the return
        time.sleep(0.02)
    assert 0.02 <= clock.evaluations[0] < 0.05 and clock.evaluations[1] >= 0.02


def test_progress_lines_say_epoch_of_total(tmp_path):
    lines = []
    train_run("model_1_a", "smoke", 0, write=lines.append)
    assert any("epoch 2/2" in line and "val_acc" in line and "left" in line for line in lines)


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="torch runs train_step eagerly")
def test_epochs_after_the_first_reuse_the_traced_train_step():
    """One `fit` per epoch must not rebuild or retrace the train step (a partial batch too).

    A compiled train step runs its Python body only while it is traced, so counting calls to
    the body counts traces.
    """
    budget = Budget("trace", epochs=4, train_samples=300, test_samples=200, description="t")
    with Trainer("model_1_a", budget, 0, write=quiet) as trainer:
        model = trainer.model
        traced = []
        step = model.train_step

        def counting_step(data):
            traced.append(trainer.next_epoch)
            return step(data)

        model.train_step = counting_step
        trainer.train_epoch()
        assert traced and set(traced) == {1}
        record = trainer.run_to_end()
        assert set(traced) == {1}, f"retraced in epochs {sorted(set(traced) - {1})}"
        assert record.completed


def test_a_completed_run_of_the_same_configuration_is_kept_not_retrained(smoke_run):
    document, out = smoke_run
    record = out / "record.json"
    stamp = record.stat().st_mtime_ns
    lines = []
    kept = train_run("model_1_b", "smoke", 0, out_dir=out, write=lines.append, keep_completed=True)
    assert kept == records.load(record) and kept.final == document.final
    assert record.stat().st_mtime_ns == stamp
    assert lines == [f"[model_1_b smoke seed=0] kept {record}: already completed"]
