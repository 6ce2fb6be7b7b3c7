"""A history of this harness's own commits at the ci budget, one commit planted slow.

    python -m bench.investigations.own_history [--commits 12] [--planted 7] [--seeds 0,1,2]
        [--sleep 0.003] [--work /tmp/cnnbench-own-history] [--bisect]

A scratch repository (tests/scratch_repo.py) whose first commit is this checkout's harness and
whose next commits each change a note, but one, which makes the divergence guard sleep
`--sleep` seconds after every step (96 steps a run at ci: 0.003 s is about +6% of model_1_a's
training here, 0.01 s about +20%). Each
commit is checked out and run as `./run.sh gate` runs (`pytest bench`, saved to one
pytest-benchmark history), model_1_a at ci, in a shuffled order so that the machine's drift
does not line up with the commits. Then both change-point detectors read the history: the
one `bench.report.history` ships (Otava) and the Welch detector it had. With `--bisect`,
`python -m bench bisect` then looks for the planted commit between the first and the last.
A commit whose results are saved is not run again: the measurement resumes.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.scratch_repo import commit, git, harness_repo  # noqa: E402


def build(repo: Path, commits: int, planted: int, sleep: float) -> list[str]:
    """Make the scratch repository (if missing); return its commits, oldest first."""
    if not repo.exists():
        dates = [f"2026-12-01T{10 + k // 60:02d}:{k % 60:02d}:00+00:00" for k in range(commits)]
        harness_repo(repo, when=dates[0])
        for k in range(1, commits):
            commit(repo, f"change {k}" + (" (planted slowdown)" if k == planted else ""),
                   sleep if k == planted else None, when=dates[k])  # fmt: skip
    return git(repo, "rev-list", "--reverse", "HEAD").split()


def run_commit(repo: Path, sha: str, seeds: str, history: Path, logs: Path) -> float:
    """Run the gate's benchmark of one commit into `history`; return its wall seconds."""
    tree = logs / f"tree-{sha[:7]}"
    if tree.exists():
        git(repo, "worktree", "remove", "--force", str(tree))
    git(repo, "worktree", "add", "--detach", "--force", str(tree), sha)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "bench", "-k", "test_train", "-q",
             "-p", "no:cacheprovider", "--cnnbench-budget=ci", "--cnnbench-archs=model_1_a",
             f"--cnnbench-seeds={seeds}", "--cnnbench-gate=off",
             f"--cnnbench-out={logs / sha[:7]}", "--benchmark-autosave",
             f"--benchmark-storage=file://{history}"],
            cwd=tree, capture_output=True, text=True, check=False, timeout=1800,
        )  # fmt: skip
    finally:
        git(repo, "worktree", "remove", "--force", str(tree))
    (logs / f"{sha[:7]}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{sha[:7]}: pytest bench exited {done.returncode}; see the log")
    (logs / f"{sha[:7]}.done").write_text(f"{time.monotonic() - started:.1f}\n")
    return time.monotonic() - started


def detect(history: Path, commits: list[str], planted: int) -> dict:
    """Both detectors on the saved history; what each found for each metric."""
    from bench.investigations.change_points import welch_change_points
    from bench.report import history as module

    found, problems = module.load([history])
    order = [c.id for c in found]
    if order != commits:
        raise RuntimeError(f"the history's order is not the commits' ({problems})")
    table = {}
    for name, points in (("otava (shipped)", module.change_points(found)),
                         ("welch (before)", welch_change_points(found))):  # fmt: skip
        table[name] = [{"metric": p.metric, "commit": order.index(p.commit),
                        "relative": p.relative, "p": p.p_value} for p in points]  # fmt: skip
    per_commit = {metric: [module.series(found, "model_1_a", metric)[i]
                           for i in range(len(found))] for metric in module.METRICS}  # fmt: skip
    return {"planted_at": planted, "found": table, "values": per_commit}


def main() -> None:
    """Build, run what is missing, detect, write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=12)
    parser.add_argument("--planted", type=int, default=7)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sleep", type=float, default=0.003)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cnnbench-own-history"))
    parser.add_argument("--out", type=Path,
                        default=ROOT / "docs" / "measurements" / "change-points")  # fmt: skip
    parser.add_argument("--bisect", action="store_true")
    args = parser.parse_args()
    repo, history, logs = args.work / "repo", args.work / "history", args.work / "logs"
    commits = build(repo, args.commits, args.planted, args.sleep)
    logs.mkdir(parents=True, exist_ok=True)
    order = commits[:]
    random.Random(0).shuffle(order)
    for number, sha in enumerate(order, 1):
        if (logs / f"{sha[:7]}.done").exists():
            continue
        seconds = run_commit(repo, sha, args.seeds, history, logs)
        print(f"{number}/{len(order)} {sha[:7]} (commit {commits.index(sha)}): {seconds:.0f} s",
              flush=True)  # fmt: skip
    result = detect(history, commits, args.planted)
    result |= {"commits": commits, "seeds": args.seeds, "sleep": args.sleep,
               "command": " ".join(sys.argv)}  # fmt: skip
    if args.bisect:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bench", "bisect", "--good", commits[0], "--bad", commits[-1],
             "--archs", "model_1_a", "--budget", "ci", "--out", str(args.work / "bisect")],
            cwd=repo, capture_output=True, text=True, check=False,
        )  # fmt: skip
        result["bisect"] = {"exit_status": done.returncode, "stdout": done.stdout,
                            "seconds": time.monotonic() - started}  # fmt: skip
        print(done.stdout)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"own-history-sleep{args.sleep:g}.json").write_text(
        json.dumps(result, indent=1) + "\n")  # fmt: skip
    for name, points in result["found"].items():
        print(name, [(p["metric"], p["commit"], f"{p['relative']:+.1%}") for p in points])


if __name__ == "__main__":
    main()
