"""Faults and bad input: nothing lost, nothing silently accepted (one test per case seen).

Faults are injected at the exact moment in this process (an exception where a kill would
land), so the tests do not depend on how fast the machine is.
"""

import dataclasses
import json
import shutil

import keras
import pytest
from records_factory import make_record

from bench.budgets import Budget
from bench.cli.commands import main as cli_main
from bench.cli.options import Settings
from bench.cli.plugin import BenchSession
from bench.data import MnistUnavailableError
from bench.measurement import aggregate
from bench.storage import baselines, layout, records
from bench.training import runfolder
from bench.training.backends import requested
from bench.training.trainer import train_run

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

BUDGET = Budget("faults", epochs=3, train_samples=512, test_samples=256, description="faults")


def quiet(line):
    pass


class Stop(BaseException):
    """Stands for a kill: nothing after it runs."""


def history(record):
    return [(e.loss, e.accuracy, e.val_loss, e.val_accuracy) for e in record.epochs]


@pytest.fixture(scope="module")
def reference():
    return train_run("model_1_b", BUDGET, 0, write=quiet)


def test_a_stop_between_checkpoint_and_record_resumes_exactly(tmp_path, monkeypatch, reference):
    save = records.save

    def stop_at_epoch_2(record, path):
        if record.status == "running" and len(record.epochs) == 2:
            raise Stop  # the epoch-2 checkpoint is on disk, its record is not
        return save(record, path)

    monkeypatch.setattr(records, "save", stop_at_epoch_2)
    with pytest.raises(Stop):
        train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=quiet)
    monkeypatch.setattr(records, "save", save)
    assert len(records.load(tmp_path / "record.json").epochs) == 1
    lines = []
    resumed = train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=lines.append)
    assert any("after epoch 1" in line for line in lines)
    assert history(resumed) == history(reference) and resumed.final == reference.final
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "record.json"]


class StopInEpoch(keras.callbacks.Callback):
    def __init__(self, fit):
        super().__init__()
        self.fit, self.fits = fit, 0

    def on_train_begin(self, logs=None):
        self.fits += 1
        if self.fits == self.fit:
            raise Stop


def test_a_rerun_keeps_the_completed_result_until_it_completes(tmp_path, reference):
    first = train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=quiet)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(Stop):  # pytest bench reruns with resume=False; stopped in epoch 2
        train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=quiet, resume=False,
                  callbacks=[StopInEpoch(2)])  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    again = train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=quiet, resume=False)
    assert records.load(tmp_path / "record.json") == again != first  # replaced (new start time)
    assert history(again) == history(reference)
    assert not runfolder.RunFolder(tmp_path).rerun.path.exists()


def test_a_stop_between_the_two_renames_of_a_replacement_is_recovered(tmp_path):
    folder = runfolder.RunFolder(tmp_path / "seed0")
    train_run("model_1_b", BUDGET, 0, out_dir=folder.path, write=quiet)
    shutil.copytree(folder.path, folder.rerun.path)  # a finished rerun
    folder.path.rename(tmp_path / ".seed0.replaced")  # the first rename happened, not the second
    lines = []
    kept = train_run("model_1_b", BUDGET, 0, out_dir=folder.path, write=lines.append,
                     keep_completed=True)  # fmt: skip
    assert kept.completed and lines[-1].endswith("already completed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0"]


def test_a_garbage_record_is_moved_aside_and_the_run_trains(tmp_path, reference):
    (tmp_path / "record.json").write_text("garbage")
    lines = []
    done = train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=lines.append)
    assert history(done) == history(reference)
    (aside,) = tmp_path.glob("record.json.corrupt-*")
    assert aside.read_text() == "garbage"
    assert any("unreadable record moved aside" in line for line in lines)


def test_a_truncated_checkpoint_is_moved_aside_and_the_run_starts_over(tmp_path, reference):
    with pytest.raises(Stop):
        train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=quiet,
                  callbacks=[StopInEpoch(2)])  # fmt: skip
    checkpoint = tmp_path / "checkpoint-epoch1.keras"
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    lines = []
    done = train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=lines.append)
    assert history(done) == history(reference)
    (message,) = [line for line in lines if "unreadable checkpoint" in line]
    assert "moved aside" in message and "File not found" not in message
    assert list(tmp_path.glob("checkpoint-epoch1.keras.corrupt-*"))


def test_another_architectures_checkpoint_is_moved_aside_not_resumed(tmp_path, reference):
    with pytest.raises(Stop):
        train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=quiet,
                  callbacks=[StopInEpoch(2)])  # fmt: skip
    import subprocess
    import sys

    # In another process, so that building it leaves this one's random state alone.
    subprocess.run([sys.executable, "-c", "import sys; from archs import REGISTRY; "
                    "REGISTRY['model_1_a'].build().save(sys.argv[1])",  # 113,162 parameters
                    str(tmp_path / "checkpoint-epoch1.keras")], check=True)  # fmt: skip
    lines = []
    done = train_run("model_1_b", BUDGET, 0, out_dir=tmp_path, write=lines.append)
    assert history(done) == history(reference) and done.arch.params == 124_682
    (message,) = [line for line in lines if "another architecture" in line]
    assert "113,162 parameters where model_1_b has 124,682" in message
    assert list(tmp_path.glob("checkpoint-epoch1.keras.corrupt-*"))
    assert keras.models.load_model(tmp_path / done.weights.file).count_params() == 124_682


def one_error(capsys):
    """Return the one `error:` line of stderr (progress lines aside); no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    return line


def _cli_run(tmp_path, *extra):
    return cli_main(["run", "--arch", "model_1_a", "--budget", "smoke", "--seeds", "0",
                     "--out", str(tmp_path), *extra])  # fmt: skip


def test_force_always_retrains_even_another_configuration(tmp_path, capsys):
    assert _cli_run(tmp_path, "--precision", "float32") == 0
    (path,) = layout.Results(tmp_path).record_paths()
    assert path.parts[-4:-1] == ("model_1_a", f"{requested()}-float32", "seed0")
    first = records.load(path)
    assert _cli_run(tmp_path, "--precision", "float32") == 0
    assert records.load(path) == first  # kept, not retrained
    assert _cli_run(tmp_path, "--precision", "float32", "--eval-every", "2") == 2
    err = one_error(capsys)
    assert "another configuration" in err and "--force" in err
    assert records.load(path) == first
    assert _cli_run(tmp_path, "--precision", "float32", "--eval-every", "2", "--force") == 0
    assert records.load(path).config.eval_every == 2
    assert records.load(path).provenance.started_at >= first.provenance.started_at


def test_another_precision_is_another_run_in_its_own_folder(tmp_path):
    """A run's identity holds its precision: a grid of two never collides, nothing replaced."""
    assert _cli_run(tmp_path, "--precision", "float32") == 0
    first = records.load(layout.Results(tmp_path).record_paths()[0])
    assert _cli_run(tmp_path, "--precision", "mixed_bfloat16") == 0
    found = {records.load(p).config.precision: p for p in layout.Results(tmp_path).record_paths()}
    assert sorted(found) == ["float32", "mixed_bfloat16"]
    assert records.load(found["float32"]) == first


def test_a_results_folder_of_the_older_layout_moves_into_variants(tmp_path, capsys):
    assert _cli_run(tmp_path, "--precision", "float32") == 0
    (path,) = layout.Results(tmp_path).record_paths()
    old = tmp_path / "runs" / "smoke" / "model_1_a" / "seed0"
    shutil.move(path.parent, old)  # as an older harness laid it out
    broken = old.with_name("seed7")
    broken.mkdir()
    (broken / "record.json").write_text("{ not a record")
    capsys.readouterr()
    assert _cli_run(tmp_path, "--precision", "float32") == 0  # kept: found where it moved
    out = "".join(capsys.readouterr())
    assert f"moved {old} to {path.parent}" in out and "already completed" in out
    assert f"left {broken}" in out and broken.exists()  # unreadable: left, said, not lost


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "/nonexistent/mnist.npz"], "MNIST path /nonexistent/mnist.npz does not exist"),
        (["--train-samples", "100000"], "the split has 60000; use --train-samples 60000"),
    ],
)
def test_bad_run_options_are_one_sentence(tmp_path, capsys, extra, message):
    assert _cli_run(tmp_path, *extra) == 2
    assert message in one_error(capsys)


def test_an_unwritable_out_is_one_sentence(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder must go")
    assert _cli_run(blocked) == 2
    assert str(blocked) in one_error(capsys)


def test_unavailable_mnist_is_one_sentence(tmp_path, capsys, monkeypatch):
    from bench.training import trainer as training

    def unavailable():
        raise MnistUnavailableError("Could not obtain verified MNIST. Sources tried: none")

    monkeypatch.setattr(training, "default_data", unavailable)
    assert _cli_run(tmp_path) == 2
    assert capsys.readouterr().err.startswith("error: Could not obtain verified MNIST")


# --- baselines: nothing replaced by less, nothing written outside, no absurd values --------


def _save_all(tmp_path, runs):
    return [str(records.save(r, tmp_path / f"r{i}" / "record.json")) for i, r in enumerate(runs)]


def test_one_record_never_replaces_a_baseline(tmp_path, capsys):
    root = tmp_path / "baselines"
    good = _save_all(tmp_path / "good", [make_record(seed=s) for s in (0, 1, 2)])
    assert cli_main(["baseline", *good, "--baselines", str(root)]) == 0
    (path,) = root.rglob("*.json")
    before = path.read_bytes()
    broken = _save_all(tmp_path / "bad", [make_record(seed=7, acc=0.1, loss=3.0)])
    assert cli_main(["baseline", *broken, "--baselines", str(root)]) == 2
    assert "at least 2 per architecture" in capsys.readouterr().err
    two = _save_all(tmp_path / "two", [make_record(seed=s, acc=0.1, loss=3) for s in (7, 8)])
    assert cli_main(["baseline", *two, "--baselines", str(root)]) == 2
    assert "fewer seeds" in capsys.readouterr().err and path.read_bytes() == before


def test_records_of_two_budgets_make_no_baseline(tmp_path, capsys):
    mixed = [make_record(seed=s) for s in (0, 1)] + [
        make_record(seed=s, budget="small", epochs=3) for s in (0, 1)
    ]
    root = tmp_path / "baselines"
    assert cli_main(["baseline", *_save_all(tmp_path, mixed), "--baselines", str(root)]) == 2
    assert "2 different baselines" in capsys.readouterr().err and not root.exists()


def test_a_budget_name_cannot_leave_the_baselines_folder(tmp_path, capsys):
    document = make_record().to_json()
    document["config"]["budget"]["name"] = "../../escape"
    path = tmp_path / "record.json"
    path.write_text(json.dumps(document))
    assert cli_main(["baseline", str(path), str(path), "--baselines", str(tmp_path / "b")]) == 2
    assert "is not a safe name" in capsys.readouterr().err
    assert list(tmp_path.rglob("*.json")) == [path]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["test_accuracy"].update(mean=-1e300, min=-1e300), "finite and at most"),
        (lambda e: e["test_loss"].update(mean=-1e300, min=-1e300), "finite and at most"),
        (lambda e: e["test_loss"].update(min=-0.5, values=[]), "negative values"),
        (lambda e: e["test_accuracy"].update(sd=-0.1), r"sd: -0\.1 is outside"),
        (lambda e: e.update(tolerance={"k": 1e9}), r"k: 1000000000\.0 is outside"),
        (lambda e: e.update(tolerance={"k": "3"}), "expected a number"),
    ],
)
def test_absurd_baselines_are_refused_on_load(tmp_path, change, message):
    path, _ = aggregate.regenerate([make_record(seed=s) for s in (0, 1)], tmp_path)
    document = json.loads(path.read_text())
    change(document["archs"]["model_1_a"])
    path.write_text(json.dumps(document))
    with pytest.raises(baselines.BaselineError, match=message) as error:
        baselines.load(path)
    assert str(path) in str(error.value)


def test_the_regeneration_hint_keeps_the_runs_backend_and_precision(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    settings = Settings.parse(lambda d: {"precision": "float32", "budget": "smoke"}.get(d))
    command = BenchSession(settings, settings.request(), gate=None).regen_command()
    assert "--cnnbench-backend=jax" in command and "--cnnbench-precision=float32" in command
    assert command.startswith("pytest bench --cnnbench-budget=smoke")


def test_a_record_whose_epochs_are_not_objects_costs_only_its_figure(tmp_path):
    from bench.report import document as report

    good = records.save(make_record(seed=0), tmp_path / "good" / "record.json")
    document = make_record(seed=1).to_json()
    document["epochs"] = [1, 2, 3]
    bad = tmp_path / "bad" / "record.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(document))
    text = report.write_report([good, bad], tmp_path / "report").read_text()
    assert "0.9500 ± 0.0000 (n=1)" in text and f"skipped {bad}: epochs[0]" in text


def test_dataclass_replace_keeps_records_valid():
    record = make_record()
    slower = dataclasses.replace(record.epochs[1], train_seconds=2.0)
    assert records.from_json(
        dataclasses.replace(record, epochs=(record.epochs[0], slower, record.epochs[2])).to_json()
    )


@pytest.mark.parametrize("version", [True, "1", 1.0, None])
def test_a_version_that_is_not_an_integer_is_refused_not_migrated(tmp_path, version):
    """`"version": true` is not version 1 (True == 1 in a Python dict lookup)."""
    path, _ = aggregate.regenerate([make_record(seed=s) for s in (0, 1)], tmp_path)
    document = json.loads(path.read_text())
    path.write_text(json.dumps(document | {"version": version}))
    with pytest.raises(baselines.BaselineError, match="version: expected an integer"):
        baselines.load(path)
    record = make_record(seed=0).to_json() | {"version": version}
    with pytest.raises(records.RecordError, match="version: expected an integer"):
        records.from_json(record)


@pytest.mark.parametrize("text", ["\u0663", "1_0", "\u0663,4", " 7x", "-1"])
def test_seeds_are_ascii_digits_only(text):
    import argparse

    from bench.cli.options import seeds

    with pytest.raises(argparse.ArgumentTypeError, match="seed"):
        seeds(text)
    assert seeds("3, 10") == [3, 10]
