"""`pytest bench` end to end (pytester, smoke budget): it builds a baseline, then its gate
fails a planted regression and passes an honest rerun; regeneration refuses one seed."""

import json
import shutil
from pathlib import Path

import pytest
from main_job import main_job

from bench.storage import baselines, layout, records

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

SUITES = Path(__file__).resolve().parents[1] / "bench" / "suites"
COMMON = ("--cnnbench-budget=smoke", "--cnnbench-archs=model_1_a", "-p", "no:cacheprovider")


@pytest.fixture
def bench_dir(pytester):
    shutil.copytree(SUITES, pytester.path / "suites")
    return pytester


def run(pytester, *args):
    root = pytester.path
    return pytester.runpytest_subprocess(
        "suites", *COMMON, f"--cnnbench-baselines={root / 'baselines'}", *args
    )


def test_pytest_bench_builds_a_baseline_then_gates_a_planted_regression_and_an_honest_rerun(
    bench_dir,
):
    root = bench_dir.path
    made = run(bench_dir, "--cnnbench-seeds=0,1", "--cnnbench-regen",
               f"--cnnbench-out={root / 'regen'}")  # fmt: skip
    assert made.ret == 0, made.stdout.str()[-3000:]
    made.stdout.fnmatch_lines(["regenerated baseline *smoke*tensorflow-*.json:*"])
    (path,) = (root / "baselines" / "smoke").glob("*.json")
    assert baselines.load(path).archs["model_1_a"].seeds == (0, 1)

    planted = run(bench_dir, "--cnnbench-seeds=2", "--cnnbench-plant=lr0",
                  "--cnnbench-gate=accuracy", f"--cnnbench-out={root / 'planted'}",
                  f"--benchmark-json={root / 'p.json'}")  # fmt: skip
    assert planted.ret == pytest.ExitCode.TESTS_FAILED
    planted.stdout.fnmatch_lines(["*REGRESSION: model_1_a (seed 2) test_accuracy = *"])
    # lr 0 never reaches the smoke target either: the time-to-target check fails it too.
    planted.stdout.fnmatch_lines(["*REGRESSION: model_1_a (seed 2) epochs_to_target = missing*"])
    planted.stdout.fnmatch_lines(["2 regression(s) in 3 checks"])
    extra = json.loads((root / "p.json").read_text())["benchmarks"][0]["extra_info"]
    assert extra["plant"] == "lr0" and extra["seed"] == 2

    # The honest rerun goes through the README's main job (a local study, the same gate).
    honest = main_job(root / "honest", root / "baselines", seeds="2")
    assert honest.returncode == 0, honest.stdout[-3000:] + honest.stderr[-3000:]
    assert "0 regression(s) in 3 checks" in honest.stdout
    assert (root / "honest" / "report" / "report.md").is_file()
    (record,) = [records.load(p) for p in layout.Results(root / "honest").record_paths()
                 if p.parent.name == "seed2" and p.parts[-4] == "model_1_a"]  # fmt: skip
    assert (record.provenance.executor, record.provenance.concurrent_runs) == ("local", 0)


def test_a_missing_baseline_is_one_message_with_the_command_that_makes_it(bench_dir):
    root = bench_dir.path
    result = run(bench_dir, "--cnnbench-seeds=0", "--cnnbench-precision=float32",
                 f"--cnnbench-out={root / 'out'}")  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The failure section shows it once (not chained); pytest's one-line summary repeats it.
    failures = result.stdout.str().split("short test summary info")[0]
    assert failures.count("No baseline for budget=smoke") == 1
    text = result.stdout.str()
    assert "During handling of the above exception" not in text
    result.stdout.fnmatch_lines([
        "*pytest bench --cnnbench-budget=smoke --cnnbench-archs=model_1_a "
        "--cnnbench-seeds=0,1,2,3,4 --cnnbench-backend=* --cnnbench-precision=float32 "
        "*--cnnbench-regen*"
    ])  # fmt: skip
