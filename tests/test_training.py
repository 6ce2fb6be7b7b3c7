"""Training runs: determinism, resume after a real kill, divergence, records, budgets, CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from bench import records
from bench.budgets import BUDGETS, Budget
from bench.cli import build_parser, run_dir
from bench.data import MNIST
from bench.precisions import resolve
from bench.training import Trainer, train_run

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def history(document):
    return [[epoch[key] for key in METRICS] for epoch in document["epochs"]]


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
    assert first["final"] == again["final"]


def test_record_is_complete_and_valid(smoke_run):
    _, out = smoke_run
    loaded = records.load(out / "record.json")
    assert loaded["status"] == "completed"
    assert loaded["arch"]["params"] == 124_682
    assert len(loaded["epochs"]) == BUDGETS["smoke"].epochs
    assert loaded["epochs"][0]["compiled"] and not loaded["epochs"][1]["compiled"]
    assert loaded["timing"]["steady_samples_per_second"] > 0
    assert 0.0 <= loaded["final"]["test_accuracy"] <= 1.0
    assert loaded["final"]["test_accuracy"] == pytest.approx(loaded["epochs"][-1]["val_accuracy"])
    prov = loaded["provenance"]
    assert prov["versions"]["keras"] == keras.__version__
    assert prov["backend"] == keras.backend.backend()
    assert prov["seed"] == 0 and prov["precision"] == resolve("auto") != "auto"
    assert loaded["config"]["precision"] == prov["precision"]
    assert loaded["timing"]["peak_rss_mb"] > 100
    assert loaded["timing"]["peak_device_memory_mb"] is None  # a CPU reports none
    peaks = loaded["timing"]["peaks"]
    assert set(peaks) >= {"float32", "bfloat16"} and all(v > 0 for v in peaks.values())
    assert loaded["timing"]["peak_flops"] == peaks[loaded["timing"]["peak_dtype"]]
    assert prov["data_digest"] == MNIST.fingerprint()
    names = [layer["name"] for layer in loaded["weights"]["layers"]]
    assert names == ["conv1", "conv2", "conv3", "predictions"]
    assert sum(layer["histogram"]["counts"][0] >= 0 for layer in loaded["weights"]["layers"]) == 4
    model = keras.models.load_model(out / loaded["weights"]["file"])
    assert model.count_params() == 124_682
    assert not (out / "checkpoint.keras").exists()


def _run_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "bench", "run", "--arch", "model_1_b", "--budget", "smoke",
            "--epochs", "5", "--train-samples", "2048", "--out", str(out)]  # fmt: skip


def test_resume_after_a_real_kill_gives_the_uninterrupted_history(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    whole = tmp_path / "whole"
    subprocess.run(_run_command(whole), env=env, check=True, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    record = run_dir(killed, "smoke-epochs5-train2048", "model_1_b", 0) / "record.json"
    child = subprocess.Popen(
        _run_command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if record.exists() and len(json.loads(record.read_text())["epochs"]) >= 2:
                break
            if child.poll() is not None:
                pytest.fail("the child finished before it could be killed")
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    partial = records.load(record)
    assert partial["status"] == "running" and 2 <= len(partial["epochs"]) < 5
    resumed = subprocess.run(
        _run_command(killed), env=env, check=True, capture_output=True, text=True, timeout=600
    )
    assert f"after epoch {len(partial['epochs'])}" in resumed.stderr
    reference = records.load(
        run_dir(whole, "smoke-epochs5-train2048", "model_1_b", 0) / "record.json"
    )
    final = records.load(record)
    assert final["status"] == "completed"
    assert history(final) == history(reference)
    assert final["final"] == reference["final"]


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
    assert document["status"] == "diverged"
    assert document["divergence"]["epoch"] == 1
    assert document["divergence"]["batch"] == 3
    assert document["epochs"] == [] and document["final"] == {}
    assert records.load(tmp_path / "record.json")["status"] == "diverged"


def test_divergence_can_raise(tmp_path):
    from bench.training import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="model_1_a"):
        train_run(
            "model_1_a", "smoke", 0, callbacks=[Poison()], write=quiet, raise_on_divergence=True
        )


def test_a_different_configuration_does_not_resume(tmp_path, smoke_run):
    _, out = smoke_run
    with pytest.raises(ValueError, match="another configuration"):
        train_run("model_1_b", "smoke", 5, out_dir=out, write=quiet)


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
        while trainer.epochs_left > 0:
            trainer.train_epoch()
            trainer.evaluate_epoch()
        assert set(traced) == {1}, f"retraced in epochs {sorted(set(traced) - {1})}"
        assert trainer.finish()["status"] == "completed"


def test_a_completed_run_of_the_same_configuration_is_kept_not_retrained(smoke_run):
    document, out = smoke_run
    record = out / "record.json"
    stamp = record.stat().st_mtime_ns
    lines = []
    kept = train_run("model_1_b", "smoke", 0, out_dir=out, write=lines.append, keep_completed=True)
    assert kept == records.load(record) and kept["final"] == document["final"]
    assert record.stat().st_mtime_ns == stamp
    assert lines == [f"[model_1_b smoke seed=0] kept {record}: already completed"]
    assert build_parser().parse_args(["run"]).force is False
    assert build_parser().parse_args(["run", "--force"]).force is True
