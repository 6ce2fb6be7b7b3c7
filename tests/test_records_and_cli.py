"""Record validation, budgets and the command line's handling of bad input (no training)."""

import copy
import json

import pytest

from bench import records
from bench.budgets import BUDGETS, get_budget
from bench.cli import main as cli_main

VALID = {
    "schema": records.SCHEMA,
    "version": records.VERSION,
    "status": "completed",
    "arch": {"id": "model_1_a", "section": "1.1", "params": 113162, "conv_layers": 3,
             "dropout": False, "batch_norm": False},
    "config": {"budget": {"name": "smoke", "epochs": 1}, "seed": 0, "batch_size": 128,
               "eval_batch_size": 1024, "optimizer": "adam", "learning_rate": 0.001,
               "precision": "float32", "train_samples": 512, "test_samples": 512},
    "epochs": [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5,
                "train_seconds": 1.0, "eval_seconds": 0.1, "compiled": True}],
    "timing": {},
    "final": {"test_loss": 1.0, "test_accuracy": 0.5},
    "weights": {"layers": []},
    "divergence": None,
    "provenance": {"versions": {}, "backend": "tensorflow",
                   "device": {"kind": "cpu", "name": "x"}, "precision": "float32",
                   "data_digest": "0" * 64, "started_at": "t", "command": "c"},
}  # fmt: skip


def test_a_valid_record_round_trips(tmp_path):
    path = records.save(VALID, tmp_path / "r.json")
    assert records.load(path) == VALID


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "version: this harness reads version 1"),
        (lambda d: d.update(schema="other"), "schema: expected"),
        (lambda d: d["config"].pop("seed"), "config.seed: missing"),
        (lambda d: d["arch"].update(params="many"), "arch.params: expected"),
        (lambda d: d["arch"].update(dropout=1), "arch.dropout: expected"),
        (lambda d: d.update(status="fine"), "status: expected one of"),
        (lambda d: d["epochs"][0].update(epoch=3), r"epochs\[0\]\.epoch: expected 1"),
        (lambda d: d["epochs"][0].pop("val_loss"), r"epochs\[0\].val_loss: missing"),
        (
            lambda d: d["final"].update(test_accuracy=None),
            r"final\.test_accuracy: expected a finite",
        ),
        (lambda d: d["config"]["budget"].update(epochs=2), "a completed run has 2 epochs"),
    ],
)
def test_malformed_records_are_rejected_with_the_field_named(tmp_path, change, message):
    document = copy.deepcopy(VALID)
    change(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(records.RecordError, match=message):
        records.load(path)
    with pytest.raises(records.RecordError, match=message):
        records.save(document, tmp_path / "never.json")
    assert not (tmp_path / "never.json").exists()


def test_unreadable_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"schema": ')
    with pytest.raises(records.RecordError, match=r"broken\.json: not a readable JSON record"):
        records.load(path)


def test_nan_is_stored_as_null_and_then_rejected_for_a_completed_run(tmp_path):
    document = copy.deepcopy(VALID)
    document["final"]["test_loss"] = float("nan")
    with pytest.raises(records.RecordError, match=r"final\.test_loss"):
        records.save(document, tmp_path / "r.json")


def test_budgets_are_named_and_overridable():
    assert BUDGETS["full"].epochs == 15 and BUDGETS["full"].train_samples is None
    custom = get_budget("ci", epochs=1)
    assert custom.epochs == 1 and custom.name == "ci-epochs1"
    with pytest.raises(ValueError, match="Valid budgets: smoke, ci, small, full"):
        get_budget("huge")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        get_budget("ci", epochs=0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--arch", "model_9"], "invalid choice: 'model_9'"),
        (["run", "--budget", "huge"], "invalid choice: 'huge'"),
        (["run", "--seeds", "-1"], "non-negative integer"),
        (["run", "--epochs", "0"], "positive integer"),
        (["run", "--precision", "fp8"], "invalid choice: 'fp8'"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_cli_rejects_bad_input_listing_valid_values(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
