"""Tally the paired comparison's verdicts: A/A runs and one planted slowdown of each shape.

    python -m bench.investigations.gate_power --rounds 20 [--out docs/measurements/gate-power]

Each round runs, one after another on this machine, `python -m bench compare --base HEAD
--budget ci` once per kind: A/A on model_1_a and model_1_b, then each speed plant of
`bench.training.plants` at the given size on model_1_a. Each comparison's verdicts are kept in
one small JSON file, `<kind>-<round>.json` (and the whole comparison, every step, gzipped
beside it, to re-judge with another rule); a round whose file exists is not run again, so a
tally stopped half way resumes, and anyone can recount it with `--count`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = {
    "aa": ("none", "model_1_a,model_1_b", 1.0),
    "slow-step": ("slow-step:{size}", "model_1_a", 1.0),
    "between-steps": ("between-steps:{size}", "model_1_a", 1.0),
    "stall": ("stall:{size}", "model_1_a", 1.25),
    "slow-eval": ("slow-eval:{size}", "model_1_a", 2.5),
}
"""Each kind's plant, architectures, and the plant's size per unit of `--size`: a stall of
F of the steps at their median pace, and F of an evaluation's batches, slow the totals by
less than F (the epoch's slower steps and its set-up, the evaluation's set-up), so they are
planted larger to slow the total by at least `--size` (measured: the tallies' changes)."""


def _summary(document: dict) -> dict:
    archs = []
    for entry in document["archs"]:
        found = {"arch": entry["arch"], "status": entry["status"], "failed": entry.get("failed")}
        for name in ("speed", "training", "evaluation"):
            if entry.get(name):
                v = entry[name]
                found[name] = {"change": v["change"], "low": v["low"] - 1, "high": v["high"] - 1,
                               "verdict": v["verdict"]}  # fmt: skip
        found["identical"] = (entry.get("numerics") or {}).get("identical")
        archs.append(found)
    return {"plant": document["plant"], "exit_status": document["exit_status"],
            "seconds": document["seconds"], "base": document["base"]["commit"],
            "archs": archs}  # fmt: skip


def run_one(kind: str, size: str, out: Path, index: int, suffix: str = "") -> None:
    """Run one comparison of `kind` and keep its summary as `<kind>-<index>.json`."""
    plant, archs, scale = KINDS[kind]
    stem = f"{kind}{suffix}-{index:02d}"
    target = out / f"{stem}.json"
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "bench", "compare", "--base", "HEAD", "--budget",
                   "ci", "--archs", archs, "--plant", plant.format(size=f"{float(size) * scale:g}"),
                   "--out", scratch]  # fmt: skip
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = Path(scratch) / "compare" / "comparison.json"
        if not found.exists():
            print(f"{kind} {index}: no comparison written", file=sys.stderr)
            return
        document = json.loads(found.read_text())
        summary = _summary(document)
        with gzip.open(out / f"{stem}.raw.json.gz", "wt") as raw:
            json.dump(document, raw)  # every step, to re-judge with another rule
    summary["command"] = " ".join(command[1:-2])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(target)
    print(f"{stem}: exit {summary['exit_status']}", flush=True)


def count(out: Path, suffix: str = "") -> str:
    """Tally the kept files: per kind and architecture, the verdicts and the changes seen.

    A Markdown table: how many comparisons, how many passed, failed (and by which verdict)
    or could not tell, and the change of the total the plant aims at (training time, or
    evaluation time for `slow-eval`; for A/A the worst of the three), median and range.
    """
    import statistics

    rows = [
        "| kind | arch | n | ok | regression (by step / training / evaluation) | "
        "cannot tell | change, median [range] |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for kind in KINDS:
        files = sorted(out.glob(f"{kind}{suffix}-[0-9][0-9].json"))
        by_arch: dict[str, list[dict]] = {}
        for path in files:
            for arch in json.loads(path.read_text())["archs"]:
                by_arch.setdefault(arch["arch"], []).append(arch)
        for arch, found in by_arch.items():
            status = [a["status"] for a in found]
            by = {name: sum(name in (a.get("failed") or []) for a in found)
                  for name in ("step", "training", "evaluation")}  # fmt: skip
            aims = (("training", "evaluation") if kind == "aa" else
                    ("evaluation",) if kind == "slow-eval" else ("training",))  # fmt: skip
            spans = []
            for what in aims:
                changes = sorted(a[what]["change"] for a in found if a.get(what))
                if changes:
                    spans.append(f"{what} {statistics.median(changes):+.1%} "
                                 f"[{changes[0]:+.1%}, {changes[-1]:+.1%}]")  # fmt: skip
            rows.append(f"| {kind}{suffix} | {arch} | {len(found)} | {status.count('ok')} | "
                        f"{status.count('regression')} ({by['step']} / {by['training']} / "
                        f"{by['evaluation']}) | {status.count('cannot compare')} | "
                        f"{'; '.join(spans)} |")  # fmt: skip
    return "\n".join(rows)


def _wait_while_paused(pause: Path) -> None:
    """Wait while `pause` exists: the machine is someone else's for a moment."""
    import time

    while pause.exists():
        time.sleep(2)


def main() -> None:
    """Run the rounds that are missing, then print the tally."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--size", default="0.1", help="each plant's size F (default 0.1)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--out", type=Path, default=Path("docs/measurements/gate-power"))
    parser.add_argument("--suffix", default="", help="appended to each kind's file names")
    parser.add_argument("--count", action="store_true", help="only count the kept files")
    parser.add_argument(
        "--pause",
        type=Path,
        default=Path("/tmp/cnnbench-tally.pause"),
        help="while this file exists, start no comparison (default %(default)s)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.count:
        for index in range(1, args.rounds + 1):
            for kind in args.kinds.split(","):
                if not (args.out / f"{kind}{args.suffix}-{index:02d}.json").exists():
                    _wait_while_paused(args.pause)
                    run_one(kind, args.size, args.out, index, args.suffix)
    print(count(args.out, args.suffix))


if __name__ == "__main__":
    main()
