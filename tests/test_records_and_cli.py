"""Run records (typed, validated, migrated), budgets, options and the command line's errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from records_factory import make_record

from bench.budgets import BUDGETS, get_budget
from bench.cli.commands import main as cli_main
from bench.cli.options import OptionError, Settings
from bench.storage import records


def test_a_valid_record_round_trips(tmp_path):
    record = make_record()
    path = records.save(record, tmp_path / "r.json")
    assert records.load(path) == record


def _mutate(change):
    document = make_record(epochs=3).to_json()
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=9), "reads versions up to 6 of cnn-mnist-bench/run, got 9"),
        (lambda d: d.update(schema="other"), "schema: expected"),
        (lambda d: d["config"].pop("seed"), "config.seed: missing"),
        (lambda d: d["config"].update(seed=2**32), r"config\.seed: 4294967296 is outside"),
        (lambda d: d["arch"].update(params="many"), "arch.params: expected a number"),
        (lambda d: d["arch"].update(dropout=1), "arch.dropout: expected true or false"),
        (lambda d: d["arch"].update(id="../x"), r"arch\.id: '\.\./x' is not a safe name"),
        (lambda d: d["weights"].update(file="/etc/passwd"), r"weights\.file: '/etc/passwd' is"),
        (lambda d: d["weights"].update(file="../../model.keras"), r"weights\.file: '\.\./\.\."),
        (lambda d: d.update(status="fine"), "status: 'fine' is not one of"),
        (lambda d: d["epochs"][0].update(epoch=3), r"epochs\[0\]\.epoch: expected 1"),
        (lambda d: d["epochs"][0].pop("val_loss"), r"epochs\[0\]\.val_loss: missing"),
        (lambda d: d["epochs"][0].update(train_seconds=0), r"train_seconds: 0 must be greater"),
        (
            lambda d: d["epochs"][0].update(loss=float("inf")),
            r"epochs\[0\]\.loss: expected a finite",
        ),
        (lambda d: d["final"].update(test_accuracy=7.5), r"final\.test_accuracy: 7\.5 is outside"),
        (lambda d: d.update(final=None), "a completed run has final test metrics"),
        (lambda d: d["config"]["budget"].update(epochs=2), "a completed run has 2 epochs"),
        (lambda d: d["timing"].update(peak_flops=-1), r"timing\.peak_flops: -1 must be greater"),
        (lambda d: d.update(epochs=[1, 2, 3]), r"epochs\[0\]: expected an object"),
        (lambda d: d.update(colour="red"), r"unknown field\(s\) \['colour'\]"),
    ],
)
def test_malformed_records_are_rejected_with_the_field_named(tmp_path, change, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_mutate(change)))
    with pytest.raises(records.RecordError, match=message) as error:
        records.load(path)
    assert str(path) in str(error.value)


def test_a_record_that_would_not_load_is_never_written(tmp_path):
    bad = make_record(acc=1.5)
    with pytest.raises(records.RecordError, match=r"accuracy: 1\.4 is outside \[0, 1\]"):
        records.save(bad, tmp_path / "never.json")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"schema": ')
    with pytest.raises(records.RecordError, match=r"broken\.json: not a readable JSON record"):
        records.load(path)


def test_version_1_records_are_migrated(tmp_path):
    current = make_record().to_json()
    legacy = dict(current, version=1)
    legacy["timing"] = {**current["timing"], "steady_samples_per_second": 1.0, "efficiency": 0.4}
    running = dict(legacy, status="running", timing={}, final={}, weights={})
    for document in (legacy, running):
        path = tmp_path / f"{document['status']}.json"
        path.write_text(json.dumps(document))
        loaded = records.load(path)
        assert loaded.version == records.VERSION == 6
    assert records.load(tmp_path / "completed.json").timing == make_record().timing
    assert records.load(tmp_path / "running.json").timing is None


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
        (["run", "--arch", "model_9"], "unknown architecture(s) ['model_9']"),
        (["run", "--budget", "huge"], "invalid choice: 'huge'"),
        (["run", "--seeds", "-1"], "a seed is an integer from 0 to 4294967295"),
        (["run", "--seeds", str(2**32)], "a seed is an integer from 0 to 4294967295"),
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


def test_the_cli_and_pytest_read_the_same_options_the_same_way():
    import argparse

    from bench.cli.commands import build_parser
    from bench.cli.options import PYTEST_PREFIX, add_options

    cli = build_parser().parse_args(
        ["run", "--arch", "model_1_a,model_2_a", "model_3_a", "--seeds", "0,1", "2"]
    )
    plugin_parser = argparse.ArgumentParser()
    add_options(plugin_parser.add_argument, ("archs", "seeds", "out"), prefix=PYTEST_PREFIX)
    plugin = plugin_parser.parse_args(
        ["--cnnbench-archs=model_1_a,model_2_a,model_3_a", "--cnnbench-seeds=0,1,2"]
    )
    from_cli = Settings.parse(lambda d: getattr(cli, d, None))
    from_plugin = Settings.parse(lambda d: getattr(plugin, d, None))
    assert from_cli == from_plugin
    assert from_cli.archs == ("model_1_a", "model_2_a", "model_3_a")
    assert from_cli.seeds == (0, 1, 2) and str(from_cli.out) == "results"
    with pytest.raises(OptionError, match="seeds must be distinct"):
        Settings.parse(lambda d: [[1], [1]] if d == "seeds" else None)


def test_help_imports_no_backend():
    code = (
        "import sys; from bench.cli.commands import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)  # fmt: skip
    assert "--train-samples" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_expected_errors_are_one_sentence_and_debug_shows_the_traceback(tmp_path, capsys):
    garbage = tmp_path / "record.json"
    garbage.write_text("not json")
    assert cli_main(["report", str(garbage), "-o", str(tmp_path / "r")]) == 2  # nothing read
    capsys.readouterr()
    assert cli_main(["gate", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {garbage}: not a readable JSON record") and "Traceback" not in err
    )
    with pytest.raises(records.RecordError):
        cli_main(["--debug", "gate", str(garbage)])


def test_pins_are_checked_against_what_is_installed(tmp_path, capsys):
    import importlib.metadata

    pytest_version = importlib.metadata.version("pytest")
    good = tmp_path / "good.txt"
    good.write_text(f"# comment\npytest=={pytest_version}\nnot-installed-package==1.0\n")
    assert cli_main(["pins", str(good)]) == 0
    assert f"pytest=={pytest_version}" in capsys.readouterr().out
    bad = tmp_path / "bad.txt"
    bad.write_text("pytest==0.0.1\n")
    assert cli_main(["pins", str(bad)]) == 1
    assert f"MISMATCH: pytest pinned 0.0.1, installed {pytest_version}" in capsys.readouterr().err
    broken = tmp_path / "broken.txt"
    broken.write_text("pytest>=8\n")
    assert cli_main(["pins", str(broken)]) == 2
    assert "broken.txt:1: not a name==version pin" in capsys.readouterr().err


def test_the_repository_pins_the_libraries_that_move_the_numbers():
    from pathlib import Path

    from bench.cli import pins

    pinned = pins.read(Path(__file__).resolve().parents[1] / "constraints.txt")
    assert {"tensorflow", "keras", "numpy", "pytest-benchmark"} <= set(pinned)


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"version": ' + "9" * 5000 + "}", "digits"),
     ("[" * 100_000 + "]" * 100_000, "not a readable JSON record"),
     ("\xff\xfe", "not a readable JSON record")],
)  # fmt: skip
def test_a_crafted_record_is_refused_naming_its_file_and_set_aside(tmp_path, content, message):
    from bench.training.runfolder import RunFolder

    folder = RunFolder(tmp_path)
    folder.record.write_text(content, encoding="latin-1")
    folder.model.write_bytes(b"the model the record describes")
    with pytest.raises(records.RecordError, match=message) as error:
        records.load(folder.record)
    assert str(folder.record) in str(error.value)
    lines = []
    assert folder.load_or_set_aside(lines.append) is None and not folder.record.exists()
    assert "moved aside" in lines[0] and "its model" in lines[0] and not folder.model.exists()
    (kept,) = tmp_path.glob(f"{folder.model.name}.corrupt-*")
    assert kept.read_bytes() == b"the model the record describes"  # nothing lost


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    import os

    pipe = tmp_path / "record.json"
    os.mkfifo(pipe)
    with pytest.raises(records.RecordError, match="not a regular file"):
        records.load(pipe)


def test_a_study_baseline_of_one_seed_is_refused_before_anything_trains(capsys):
    status = cli_main(["study", "--archs", "model_1_a", "--budget", "smoke", "--seeds", "0",
                       "--baseline"])  # fmt: skip
    assert status == 2
    assert "regenerating a baseline needs at least 2 seeds" in capsys.readouterr().err


def test_a_bad_targets_file_fails_a_run_before_its_first_epoch(tmp_path, monkeypatch):
    from bench.storage import targets
    from bench.training.trainer import Trainer

    bad = tmp_path / "targets.json"
    bad.write_text("{ broken")
    monkeypatch.setattr(targets.layout, "targets_path", lambda: bad)
    with pytest.raises(targets.TargetsError, match=str(bad)):
        images = (np.zeros((600, 28, 28), np.uint8), np.zeros(600, np.uint8))
        Trainer("model_1_a", "smoke", 0, write=lambda line: None, data=(images, images))
