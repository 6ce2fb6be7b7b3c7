"""Tally the stored-baseline gate: a baseline made here, honest reruns and planted slowdowns.

    python -m bench.investigations.stored_gate_power [--out docs/measurements/stored-gate]

First a 5-seed baseline of model_1_a at the `ci` budget on this machine, into a scratch
baselines folder (`pytest bench --cnnbench-regen`, as a user makes one); then, interleaved, 10
honest reruns with other seeds and runs planted with each speed plant of
`bench.training.plants` at each size. Each run is a `pytest bench` session as CI runs it; the
gate's checks of each run are kept as `<name>.json` (metric, observed, bound, passed); a run
whose file exists is not run again, so the tally resumes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = ("0.05", "0.1", "0.2", "0.3")
SHAPES = ("slow-step", "between-steps", "stall", "slow-eval")
ARCH = "model_1_a"


def pytest_bench(out: Path, baselines: Path, seeds: str, plant: str, regen: bool) -> int:
    """Run one `pytest bench` session; return its exit status."""
    command = [sys.executable, "-m", "pytest", "bench", "-k", "test_train", "-q",
               "-p", "no:cacheprovider", "--cnnbench-budget=ci", f"--cnnbench-archs={ARCH}",
               f"--cnnbench-seeds={seeds}", f"--cnnbench-out={out}",
               f"--cnnbench-baselines={baselines}", f"--cnnbench-plant={plant}",
               f"--benchmark-json={out / 'benchmark.json'}"]  # fmt: skip
    if regen:
        command.append("--cnnbench-regen")
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    (out / "pytest.log").write_text(done.stdout + done.stderr)
    return done.returncode


def checks_of(out: Path, baselines: Path) -> list[dict]:
    """Check the session's run against the baseline; return the checks as plain data."""
    from bench.gate import Gate
    from bench.storage import records

    document = json.loads((out / "benchmark.json").read_text())
    found = []
    for bench in document["benchmarks"]:
        record = records.load(Path(bench["extra_info"]["record"]) / "record.json")
        for check in Gate(baselines).check(record):
            found.append({"metric": check.metric, "observed": check.observed,
                          "mean": check.mean, "bound": check.bound,
                          "passed": check.passed, "change": check.relative})  # fmt: skip
    return found


def main() -> None:
    """Make the baseline if missing, run what is missing, then print the tally."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/measurements/stored-gate"))
    parser.add_argument("--reruns", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    baselines = args.out / "baselines"
    if not any(baselines.rglob("*.json")):
        with tempfile.TemporaryDirectory() as scratch:
            status = pytest_bench(Path(scratch), baselines, "0,1,2,3,4", "none", regen=True)
            print(f"baseline: exit {status}", flush=True)
    plan = []
    for index in range(args.reruns):
        plan.append((f"honest-{index:02d}", "none", 10 + index))
        shape, size = SHAPES[index % len(SHAPES)], SIZES[(index // len(SHAPES)) % len(SIZES)]
        plan.append((f"{shape}-{size}", f"{shape}:{size}", 30 + index))
    for shape in SHAPES:  # every shape at every size, after the interleaved first part
        for size in SIZES:
            name = f"{shape}-{size}"
            if name not in (p[0] for p in plan):
                plan.append((name, f"{shape}:{size}", 50 + len(plan)))
    for name, plant, seed in plan:
        target = args.out / f"{name}.json"
        if target.exists():
            continue
        with tempfile.TemporaryDirectory() as scratch:
            status = pytest_bench(Path(scratch), baselines, str(seed), plant, regen=False)
            try:
                checks = checks_of(Path(scratch), baselines)
            except (OSError, KeyError, ValueError) as error:
                print(f"{name}: no checks ({error})", flush=True)
                continue
        target.write_text(json.dumps({"plant": plant, "seed": seed, "exit_status": status,
                                      "checks": checks}, indent=1) + "\n")  # fmt: skip
        print(f"{name}: exit {status}", flush=True)
    for path in sorted(args.out.glob("*.json")):
        run = json.loads(path.read_text())
        failed = [c["metric"] for c in run["checks"] if not c["passed"]]
        timed = ("step_seconds", "train_seconds_total", "eval_seconds_total")
        changes = {c["metric"]: f"{c['change']:+.1%}" for c in run["checks"]
                   if c["metric"] in timed and c["change"] is not None}  # fmt: skip
        print(f"{path.stem:22} failed={failed} {changes}")


if __name__ == "__main__":
    main()
