"""The study: a grid of runs on the local executor and on a real local Ray instance.

The Ray tests start Ray with this machine's CPUs and give each run all of them, so that a
run's thread settings match the local executor's and the final metrics must be identical.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from main_job import main_job
from records_factory import make_record

from bench.cli.commands import main as cli_main
from bench.cli.options import Settings
from bench.gate import Gate
from bench.measurement import aggregate
from bench.storage import baselines, layout, records
from bench.storage.records import Device
from bench.study import estimate, executors
from bench.study.executors import _Ledger
from bench.study.plan import Plan
from bench.training.backends import requested
from bench.training.precisions import resolve
from bench.training.runfolder import RunFolder

SMOKE_GRID = ("--budget", "smoke", "--archs", "model_1_a,model_1_b", "--seeds", "0,1")
CPUS = str(len(os.sched_getaffinity(0)))
FIRST_EPOCH = re.compile(r"_train_task pid=(\d+)\).*?\[(\w+) smoke seed=(\d)\] epoch 1/2 loss")
"""A Ray worker's forwarded progress line (colour codes between): its first epoch is done."""


def study(out, *args, timeout=900):
    env = dict(os.environ, RAY_DEDUP_LOGS="0", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "bench", "study", *args, "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=timeout, env=env,
    )  # fmt: skip


def finals(out):
    found = {}
    for path in layout.Results(out).record_paths():
        record = records.load(path)
        found[(record.arch.id, record.config.seed)] = record
    return found


def history(record):
    return [(e.loss, e.accuracy, e.val_loss, e.val_accuracy) for e in record.epochs]


# --- the grid, refused before anything starts --------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--archs", "model_1_a,model_9_z"), "unknown architecture"),
        (("--seeds", ""), "seed"),
        (("--seeds", "1,1"), "seeds must be distinct"),
        (("--precisions", "float32,float64"), "unknown precision"),
        (("--retries", "-1"), "expected an integer >= 0"),
        (("--executor", "ray", "--gpus-per-run", "-1"), "expected an integer >= 0"),
    ],
)
def test_a_bad_grid_is_refused_before_anything_starts(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    try:  # argparse refuses what one option's parser can see; the rest is refused after
        status = cli_main(["study", "--budget", "smoke", *args, "--out", str(out)])
    except SystemExit as stop:
        status = stop.code
    assert status == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # no run folder, no report: nothing started


def test_an_unwritable_results_folder_fails_before_any_run(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    status = cli_main(["study", *SMOKE_GRID, "--out", str(tmp_path / "file" / "out")])
    assert status == 2
    assert "error:" in capsys.readouterr().err


def test_the_ray_executor_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    status = cli_main(["study", "--executor", "ray", *SMOKE_GRID, "--out", str(tmp_path / "o")])
    assert status == 2
    assert 'pip install -e ".[cluster]"' in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- machine sharing: counted, recorded, and kept out of the speed gate ------------------


def test_the_ledger_counts_runs_that_shared_a_node_and_ends_a_dead_attempt_at_its_heartbeat():
    ledger, now = _Ledger(), [0.0]
    ledger.clock = lambda: now[0]

    def at(t, call, *args):
        now[0] = t
        return call(*args)

    at(0, ledger.begin, "a1", "a", "n1")
    at(0, ledger.begin, "b1", "b", "n2")
    assert at(5, ledger.end, "b1") == 0  # alone on its node
    at(10, ledger.begin, "c1", "c", "n1")  # beside a
    at(12, ledger.seen, "a1")  # a's last heartbeat: its worker dies after it
    at(18, ledger.seen, "c1")
    at(20, ledger.begin, "d1", "d", "n1")  # a is dead by now: beside c only
    assert at(20, ledger.running) == {"c": 1, "d": 1}  # a: no heartbeat for 8 s
    assert at(30, ledger.end, "c1") == 2  # a (10-12) and d (20-30)
    at(31, ledger.begin, "a2", "a", "n2")  # a's retry, on n2
    assert at(40, ledger.end, "d1") == 1  # c only: the dead attempt of a had ended at 12
    assert at(41, ledger.end, "a2") == 0  # the retry had n2 to itself
    assert ledger.attempts_of("a") == 2


def test_a_run_that_shared_its_machine_keeps_its_accuracy_checks_but_not_its_speed(tmp_path):
    alone = [make_record(seed=s, acc=0.95 + s / 1000, efficiency=0.4) for s in range(3)]
    aggregate.regenerate(alone, tmp_path)
    shared = make_record(seed=7, efficiency=0.01, concurrent_runs=3)  # 40x slower: shared
    gate = Gate(tmp_path)
    assert {c.metric for c in gate.check(shared)} == {"test_accuracy", "test_loss"}
    assert "shared its machine with 3 other run(s)" in gate.summary()
    slow = make_record(seed=8, efficiency=0.01, concurrent_runs=0)  # alone and slow: caught
    assert [c.metric for c in gate.check(slow) if not c.passed] == ["efficiency"]


def test_a_baseline_takes_timings_only_from_runs_that_had_the_machine_to_themselves(tmp_path):
    mixed = [make_record(seed=0, efficiency=0.4, concurrent_runs=0),
             make_record(seed=1, efficiency=0.42, concurrent_runs=0),
             make_record(seed=2, efficiency=0.05, concurrent_runs=1)]  # fmt: skip
    entry = aggregate.aggregate(mixed).archs["model_1_a"]
    assert entry.test_accuracy.n == 3 and entry.efficiency.n == 2
    assert entry.efficiency.min == pytest.approx(0.4)

    all_shared = [make_record(seed=s, concurrent_runs=1) for s in range(2)]
    path, _ = aggregate.regenerate(all_shared, tmp_path)
    assert baselines.load(path).archs["model_1_a"].efficiency is None
    gate = Gate(tmp_path)
    assert "efficiency" not in {c.metric for c in gate.check(make_record(seed=5))}
    assert "the baseline has no timings" in gate.summary()


# --- real runs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    done = study(out, *SMOKE_GRID)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done


@pytest.mark.slow
@pytest.mark.real_data
def test_the_local_executor_runs_the_grid_one_at_a_time_and_keeps_completed_runs(local_study):
    out, done = local_study
    runs = finals(out)
    assert sorted(runs) == [("model_1_a", 0), ("model_1_a", 1), ("model_1_b", 0), ("model_1_b", 1)]
    for record in runs.values():
        assert record.completed and record.provenance.executor == "local"
        assert record.provenance.concurrent_runs == 0
        assert record.provenance.command.startswith("python -m bench study")
    assert re.search(r"estimate: ~\S+ on this machine", done.stdout)
    assert "[study] 4/4 done (0 kept), 0 running, 0 failed" in done.stdout
    assert (out / "report" / "report.md").is_file()

    again = study(out, "--budget", "smoke", "--archs", "model_1_a", "--seeds", "1",
                  "--no-estimate")  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[study] 1/1 done (1 kept)" in again.stdout
    assert "estimate:" not in again.stdout  # no probe ran
    assert {k: r.provenance.started_at for k, r in finals(out).items()} == {
        k: r.provenance.started_at for k, r in runs.items()
    }


@pytest.mark.slow
@pytest.mark.real_data
def test_a_failed_run_is_reported_with_its_error_and_the_others_complete(tmp_path):
    out = tmp_path / "out"
    # A record of another configuration in one run's folder: that run refuses to train.
    blocker = make_record(arch_id="model_1_b", seed=0, budget="smoke", epochs=2,
                          status="running")  # fmt: skip
    variant = layout.variant(requested(), resolve("auto"))
    records.save(blocker, layout.Results(out).run_dir("smoke", "model_1_b", 0, variant)
                 / "record.json")  # fmt: skip
    done = study(out, "--budget", "smoke", "--archs", "model_1_a,model_1_b", "--seeds", "0",
                 "--no-estimate")  # fmt: skip
    assert done.returncode == 1
    assert re.search(r"model_1_b +0 .* failed .*another configuration", done.stdout)
    assert finals(out)[("model_1_a", 0)].completed


@pytest.mark.slow
@pytest.mark.real_data
def test_ray_retries_a_killed_worker_and_gives_the_local_executors_metrics(local_study, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    env = dict(os.environ, RAY_DEDUP_LOGS="0", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "bench", "study", *SMOKE_GRID, "--executor", "ray",
               "--cpus-per-run", CPUS, "--out", str(out)]  # fmt: skip
    killed, lines = None, []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as child:  # fmt: skip
        deadline = time.monotonic() + 600
        for line in child.stdout:
            lines.append(line)
            found = FIRST_EPOCH.search(line)
            if killed is None and found:  # a run has finished its first epoch: kill its worker
                killed = (found.group(2), int(found.group(3)))
                os.kill(int(found.group(1)), signal.SIGKILL)
            assert time.monotonic() < deadline
    text = "".join(lines)
    assert killed is not None, text[-3000:]
    assert child.returncode == 0, text[-3000:]
    assert f"completed after 2 attempts: {killed[0]} seed={killed[1]}" in text

    local, remote = finals(local_study[0]), finals(out)
    assert sorted(remote) == sorted(local)
    for key, record in remote.items():
        assert record.provenance.executor == "ray"
        assert record.provenance.concurrent_runs == 0  # one run at a time: all CPUs each
        if record.provenance.device.kind == "cpu":  # same threads, same ops: identical
            assert record.final == local[key].final, key
            assert history(record) == history(local[key]), key
        else:  # GPU kernels need not be bitwise deterministic: inside the smoke seed spread
            gap = abs(record.final.test_accuracy - local[key].final.test_accuracy)
            assert gap <= 0.02, key
        (folder,) = (out / "runs" / "smoke" / key[0]).glob(f"*/seed{key[1]}")
        assert (folder / "model.keras").is_file()


# --- the estimate ------------------------------------------------------------------------


def _probe(step=0.1, compile=2.0, eval_batch=0.5, startup=5.0, run=1.5):
    cost = estimate.Cost(step=step, compile=compile, eval_batch=eval_batch)
    return estimate.Probe(startup, run, {"float32": 1e11, "bfloat16": 2e11},
                          {"auto": {"model_1_a": cost, "model_2_a": cost}}, 10.0,
                          {"auto": "float32"}, Device("cpu", "test cpu"), {})  # fmt: skip


def _plan(seeds=(0,), archs=("model_1_a",), budget="ci"):
    settings = Settings.parse(lambda dest: None, seeds=list(seeds), archs=list(archs),
                              budget=budget)  # fmt: skip
    return Plan.of(settings.request())


def test_the_estimate_counts_steps_and_evaluations_and_only_what_a_run_has_left():
    (spec,) = _plan().runs  # ci: 3 epochs of 32 steps, 2 evaluation batches per evaluation
    full = estimate.estimate([spec], _probe()).seconds[spec]
    assert full == pytest.approx(5.0 + 1.5 + 2.0 + 3 * 32 * 0.1 + 4 * 2 * 0.5)
    resumed = estimate.estimate([spec], _probe(), {spec: 2}).seconds[spec]
    assert resumed == pytest.approx(5.0 + 1.5 + 2.0 + 1 * 32 * 0.1 + 2 * 2 * 0.5)
    kept = estimate.estimate([spec], _probe(), {spec: 3}).seconds[spec]
    assert kept == pytest.approx(5.0)


def test_the_main_job_takes_the_seeds_its_estimate_fits_in_its_minutes():
    plan = _plan(seeds=(0, 1, 2, 3, 4), archs=("model_1_a", "model_2_a"))
    guess = estimate.estimate(plan.runs, _probe())  # 2 x 22.1 s per seed
    assert estimate.seeds_that_fit(guess, (0, 1, 2, 3, 4), 110) == (0, 1)
    assert estimate.seeds_that_fit(guess, (0, 1, 2, 3, 4), 10) == (0,)  # always one
    assert estimate.seeds_that_fit(guess, (0, 1, 2, 3, 4), 1e6) == (0, 1, 2, 3, 4)


@pytest.mark.slow
@pytest.mark.real_data
def test_the_main_job_without_a_baseline_fails_before_training(tmp_path):
    done = main_job(tmp_path / "out", tmp_path / "none")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "No baseline for budget=smoke" in done.stderr
    assert "python -m bench study --budget smoke --archs model_1_a --seeds 0,1,2,3,4" in done.stderr
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize(
    ("line", "echoed"),
    [
        ("I0000 00:00:1796131530.119305    8183 port.cc:153] oneDNN custom operations", False),
        ("E0000 00:00:1796131532.767311    8183 cuda_platform.cc:52] failed call to cuInit", False),
        ("WARNING: All log messages before absl::InitializeLog() is called are written", False),
        ("[model_1_a full seed=0] epoch 1/15 loss 0.2080 acc 0.9398", True),
        ("error: ValueError: the budget asks for 100000 samples", True),
        ("F0000 00:00:1.2 1 a.cc:1] Check failed", True),  # fatal: always shown
        ("Traceback (most recent call last):", True),
    ],
)
def test_the_local_executor_hides_only_the_backends_start_up_chatter(line, echoed):
    assert (not executors.BACKEND_CHATTER.match(line)) == echoed


# --- what travels to and from a Ray worker -----------------------------------------------


def test_a_worker_is_shipped_what_it_needs_to_keep_or_resume_a_run(tmp_path):
    assert RunFolder(tmp_path / "empty").resumable() == {}
    running = make_record(status="running", epochs=2)
    records.save(running, tmp_path / "r" / "record.json")
    (tmp_path / "r" / "checkpoint-epoch2.keras").write_bytes(b"model after 2 epochs")
    (tmp_path / "r" / "checkpoint-epoch1.keras").write_bytes(b"stale")
    assert RunFolder(tmp_path / "r").resumable() == {
        "record.json": (tmp_path / "r" / "record.json").read_bytes(),
        "checkpoint-epoch2.keras": b"model after 2 epochs",
    }
    records.save(make_record(), tmp_path / "c" / "record.json")  # completed: the record only
    assert list(RunFolder(tmp_path / "c").resumable()) == ["record.json"]


def test_the_driver_writes_a_returned_run_whole_and_drops_its_stale_checkpoints(tmp_path):
    folder = tmp_path / "runs" / "ci" / "model_1_a" / "seed0"
    folder.mkdir(parents=True)
    (folder / "checkpoint-epoch2.keras").write_bytes(b"stale")
    done = make_record(concurrent_runs=1)
    record = executors._write_back(folder, {"record": done.to_json(), "model": b"trained"})
    assert record == done == records.load(folder / "record.json")
    assert (folder / "model.keras").read_bytes() == b"trained"
    assert sorted(p.name for p in folder.iterdir()) == ["model.keras", "record.json"]
