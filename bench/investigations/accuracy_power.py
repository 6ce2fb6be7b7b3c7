"""How sharp the accuracy verdicts are: the noise of `ci`, power on planted changes, false alarms.

    python -m bench.investigations.accuracy_power train [--archs model_1_a,model_1_b]
        [--conditions none,jitter:0.0001,lr-scale:0.85,...] [--seeds 0-19] [--worker 0/2]
    python -m bench.investigations.accuracy_power count [--seeds-a-side 5] [--markdown]
    python -m bench.investigations.accuracy_power export --to DIR   # the base's records

`train` trains each (architecture, condition, seed) once, as the comparison's side process
trains its accuracy seeds (`bench.compare.side_process.build`, the same `Trainer` and plant)
and keeps, one JSON line per run in `<out>/runs/<arch>/<condition>.jsonl`: the history, the
final test metrics on the budget's test split and on the whole test split, which test images
it got wrong (for the noise's decomposition), and the run's record (for the stored gate). A
run already in its file is not trained again, so `train` resumes where it stopped; several
workers (`--worker i/n`, each its own process) split the runs between them.

`count` reads those files and judges, with the verdict's own functions:

* the noise: the spread over seeds of test accuracy and loss on the budget's 2,000 test
  images, on the other 8,000 and on all 10,000, and how much of it the finite test set
  explains (the binomial spread of the per-image error rates, as Jordan, ICLR 2024);
* the comparison's accuracy verdict (`bench.compare.accuracy.judge`): 20 comparisons per
  condition and architecture, comparison i of the base (`none`) against the condition on
  the seeds i, i+1, ..., i+K-1 (modulo the seeds trained), the same seeds on both sides, as
  `python -m bench compare` pairs them, and when that cannot tell, on the seeds i, ...,
  i+2K-1, as the comparison then trains (`accuracy.EXTEND`). With 20 seeds trained a
  condition, each seed serves several comparisons: the 20 are not independent draws
  (`--disjoint` takes disjoint seed sets, which needs 20 K seeds a condition);
* the stored gate (`bench.gate.Gate`, the packaged baselines) on each seed's record, and on
  seed 0 alone, which is what `.ci/run` gates.

It writes `<out>/summary.json` (the tally) and, with `--markdown`, prints the tables
docs/comparison.md shows.

`export` writes the base's (`none`) records as `DIR/<arch>/seed<N>/record.json`, for
`python -m bench baseline` (this machine's kind's baseline). They are marked as having shared
their machine (`provenance.concurrent_runs`): the runs trained while other work ran at times,
so a baseline made from them keeps their accuracy but not their timings.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("docs/measurements/accuracy-power")
ARCHS = ("model_1_a", "model_1_b")
CONDITIONS = ("none", "jitter:0.0001", "lr-scale:0.85", "lr-scale:0.72", "lr-scale:0.6")
"""The base (`none`), the honest control, and three learning-rate scales sized to lower
`ci` test accuracy by about 0.5, 1 and 2 points (measured: `count`)."""
BUDGET = "ci"


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _path(out: Path, arch: str, condition: str) -> Path:
    return out / "runs" / arch / f"{condition.replace(':', '@')}.jsonl"


def _done(path: Path) -> dict[int, dict[str, Any]]:
    """Return the runs of one file by seed: the plain file being written, or its kept gzip."""
    import gzip

    found: dict[int, dict[str, Any]] = {}
    packed = path.with_name(path.name + ".gz")
    texts = [gzip.decompress(packed.read_bytes()).decode()] if packed.exists() else []
    texts += [path.read_text()] if path.exists() else []
    for text in texts:
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill: trained again
            if isinstance(row, dict) and isinstance(row.get("seed"), int):
                found[row["seed"]] = row
    return found


def train(out: Path, archs: list[str], conditions: list[str], seeds: list[int],
          worker: int, workers: int) -> None:  # fmt: skip
    """Train the runs this worker owns that are not in their files yet."""
    from bench.compare import side_process
    from bench.training.precisions import resolve

    precision = resolve("auto")
    todo = [(seed, arch, condition) for seed in seeds for arch in archs
            for condition in conditions]  # fmt: skip
    for index, (seed, arch, condition) in enumerate(todo):
        path = _path(out, arch, condition)
        if index % workers != worker or seed in _done(path):
            continue
        started = time.perf_counter()
        command = {"arch": arch, "budget": BUDGET, "epochs": None, "train_samples": None,
                   "seed": seed, "precision": precision, "plant": condition}  # fmt: skip
        trainer, _ = side_process.build(command)
        with trainer:
            record = trainer.run_to_end()
            full, wrong = _full_and_wrong(trainer)
        row = {"seed": seed, "arch": arch, "plant": condition, "precision": precision,
               "status": record.status,
               "final": [record.final.test_loss, record.final.test_accuracy]
               if record.final else None,
               "full": full, "wrong": wrong, "seconds": time.perf_counter() - started,
               "record": record.to_json()}  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as file:  # one line a run: a kill loses at most the run it cut
            file.write(json.dumps(row) + "\n")
        print(f"{arch} {condition} seed {seed}: {row['full']} ({row['seconds']:.0f} s)",
              flush=True)  # fmt: skip


def _full_and_wrong(trainer: Any) -> tuple[list[float], str]:
    """Return `side_process.full_test`'s [loss, accuracy] and the misclassified images.

    One pass over the whole test split, the same figures as `full_test` (which the comparison
    runs), and which images were wrong, for `noise`.
    """
    import keras
    import numpy as np

    from bench.data import preprocess
    from bench.training.trainer import default_data

    (_, _), (x, y) = default_data()
    images, labels = preprocess(x, y)
    probs = np.concatenate([keras.ops.convert_to_numpy(trainer.model(images[i : i + 1024],
                                                                     training=False))
                            for i in range(0, len(images), 1024)]).astype(np.float64)  # fmt: skip
    from bench.compare.side_process import figures

    wrong = (probs.argmax(axis=1) != labels.argmax(axis=1)).astype(np.uint8)
    return figures(probs, labels), np.packbits(wrong).tobytes().hex()


def _bits(hex_text: str, n: int = 10_000) -> list[int]:
    import numpy as np

    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_text), dtype=np.uint8))[:n].tolist()


def noise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the spread over seeds on each part of the test split, and the test set's share.

    The finite-test-set share: each image's error rate p_i over the seeds; were the runs'
    errors independent coin flips with those rates, accuracy on n images would spread by
    sqrt(sum p_i (1 - p_i)) / n (Jordan, ICLR 2024). Its square over the measured variance
    is the share of the spread that a larger test set would remove.
    """
    import numpy as np

    wrong = np.array([_bits(r["wrong"]) for r in rows], dtype=float)
    parts = {"first 2,000 (ci's split)": slice(0, 2000), "other 8,000": slice(2000, 10_000),
             "all 10,000": slice(0, 10_000)}  # fmt: skip
    found = {}
    for name, part in parts.items():
        accuracy = 1 - wrong[:, part].mean(axis=1)
        rates = wrong[:, part].mean(axis=0)
        n = rates.size
        binomial = math.sqrt(float((rates * (1 - rates)).sum())) / n
        sd = float(accuracy.std(ddof=1))
        found[name] = {"images": n, "mean": float(accuracy.mean()), "sd": sd,
                       "test_set_sd": binomial,
                       "test_set_share": min(1.0, binomial**2 / sd**2) if sd else None}  # fmt: skip
    losses = {"budget": [r["final"][0] for r in rows], "all 10,000": [r["full"][0] for r in rows]}
    found["loss"] = {k: {"mean": statistics.fmean(v), "sd": statistics.stdev(v),
                         "cv": statistics.stdev(v) / statistics.fmean(v)}
                     for k, v in losses.items()}  # fmt: skip
    found["seconds"] = statistics.median(r["seconds"] for r in rows)
    return found


def _comparisons(base: dict[int, dict[str, Any]], head: dict[int, dict[str, Any]], k: int,
                 disjoint: bool, count: int = 20) -> list[list[int]]:  # fmt: skip
    seeds = sorted(set(base) & set(head))
    if disjoint:
        return [seeds[i * k : (i + 1) * k] for i in range(min(count, len(seeds) // k))]
    if len(seeds) < k:
        return []
    windows = min(count, len(seeds))
    return [[seeds[(i + j) % len(seeds)] for j in range(k)] for i in range(windows)]


LOSS_FLOORS = (0.25, 0.15, 0.10)
"""The stored gate's loss floors tried (`bands.BANDS`: 0.25 of the mean as shipped)."""


def _gate(records: dict[int, dict[str, Any]]) -> dict[str, dict[int, bool]]:
    """Return, per loss floor tried, per seed, whether the stored gate passed its record.

    The gate as `.ci/run` runs it (`bench.gate.Gate`, accuracy mode, the packaged baselines,
    the baseline it picks on this machine), with the loss band's floor as shipped and lower.
    """
    from bench.gate import Gate
    from bench.storage import layout
    from bench.storage.baselines import Key
    from bench.storage.records import from_json

    passed: dict[str, dict[int, bool]] = {f"loss floor {f:g}": {} for f in LOSS_FLOORS}
    for seed, row in records.items():
        record = from_json(row["record"])
        gate = Gate(layout.default_baselines(), mode="accuracy")
        checks = {c.metric: c for c in gate.check(record)}
        resolved = gate.require(Key.of(record), record.provenance.versions, record.arch.id)
        loss = resolved.baseline.archs[record.arch.id].test_loss
        k = resolved.baseline.tolerance_for(record.arch.id).k
        for floor in LOSS_FLOORS:
            bound = loss.mean + max(k * loss.sd, floor * loss.mean)
            others = all(c.passed for m, c in checks.items() if m != "test_loss")
            observed = checks["test_loss"].observed
            passed[f"loss floor {floor:g}"][seed] = (
                others and observed is not None and observed <= bound
            )
        passed.setdefault("baseline", {})[seed] = bool(resolved.path.name)  # type: ignore[assignment]
        passed.setdefault("file", {})[seed] = resolved.path.name  # type: ignore[assignment]
    return passed


def count(out: Path, k: int, disjoint: bool, markdown: bool,
          thresholds: tuple[float, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Tally noise, the comparison's verdicts and the stored gate's; write summary.json.

    `thresholds`: (accuracy, loss) to judge with; the verdict's defaults when None (and only
    then is the tally written to `summary.json`).
    """
    from bench.compare import accuracy

    chosen = thresholds or (accuracy.ACCURACY_THRESHOLD, accuracy.LOSS_THRESHOLD)
    tally: dict[str, Any] = {"seeds_a_side": k, "disjoint": disjoint, "archs": {}}
    tally |= {"accuracy_threshold": chosen[0], "loss_threshold": chosen[1]}
    for arch_dir in sorted((out / "runs").iterdir()):
        arch = arch_dir.name
        runs = {_name(p): _done(_plain(p)) for p in _files(arch_dir)}
        base = runs.get("none", {})
        entry: dict[str, Any] = {"noise": noise(list(base.values())) if len(base) > 2 else None,
                                 "conditions": {}}  # fmt: skip
        for condition, head in runs.items():
            result: dict[str, Any] = {"seeds": len(head)}
            if head:
                result["accuracy_change"] = statistics.fmean(
                    r["full"][1] - base[s]["full"][1] for s, r in head.items() if s in base
                )
                result["loss_change"] = statistics.fmean(
                    math.log(r["full"][0] / base[s]["full"][0]) for s, r in head.items()
                    if s in base)  # fmt: skip
            verdicts = []
            windows = _comparisons(base, head, k, disjoint) if condition != "none" else []
            wider = _comparisons(base, head, k * accuracy.EXTEND, disjoint)
            longer = dict(zip(map(tuple, windows), wider, strict=False))
            for seeds in windows:
                pairs = [base[s]["full"] for s in seeds], [head[s]["full"] for s in seeds]
                judged = accuracy.judge(*pairs, seeds, *chosen)
                if judged.status == "unclear" and tuple(seeds) in longer:  # as the comparison
                    seeds = longer[tuple(seeds)]
                    pairs = [base[s]["full"] for s in seeds], [head[s]["full"] for s in seeds]
                    judged = accuracy.judge(*pairs, seeds, *chosen)
                verdicts.append({"seeds": seeds, "status": judged.status,
                                 "accuracy": judged.accuracy.describe(),
                                 "loss": judged.loss.describe()})  # fmt: skip
            result["comparisons"] = verdicts
            statuses = ("regression", "ok", "unclear", "improvement")
            result["verdicts"] = {s: sum(v["status"] == s for v in verdicts) for s in statuses}
            gated = _gate(head)
            result["stored_gate_file"] = sorted(set(gated.pop("file", {}).values()))
            gated.pop("baseline", None)
            result["stored_gate"] = {
                rule: {"failed": sum(not ok for ok in by_seed.values()),
                       "seed0": None if 0 not in by_seed else
                       ("failed" if not by_seed[0] else "passed")}
                for rule, by_seed in gated.items()}  # fmt: skip
            shipped = result["stored_gate"][f"loss floor {LOSS_FLOORS[0]:g}"]
            result["stored_gate_failed"] = shipped["failed"]
            result["stored_gate_seed0"] = shipped["seed0"]
            entry["conditions"][condition] = result
        tally["archs"][arch] = entry
    if thresholds is None:
        (out / "summary.json").write_text(json.dumps(tally, indent=1) + "\n")
    if markdown:
        print(_markdown(tally))
    return tally


def _markdown(tally: dict[str, Any]) -> str:
    lines = ["| arch | head | seeds | accuracy (all 10,000) | test loss | comparisons: "
             "regression / ok / cannot tell / better | stored gate: seeds failed; seed 0 |",
             "|---|---|---:|---:|---:|---|---|"]  # fmt: skip
    for arch, entry in tally["archs"].items():
        for condition, r in entry["conditions"].items():
            v = r["verdicts"]
            lines.append(
                f"| {arch} | `{condition}` | {r['seeds']} | "
                f"{r.get('accuracy_change', 0) * 100:+.2f} points | "
                f"{math.expm1(r.get('loss_change', 0)):+.1%} | "
                f"{v['regression']} / {v['ok']} / {v['unclear']} / {v['improvement']} "
                f"(of {len(r['comparisons'])}) | {r['stored_gate_failed']} of {r['seeds']}; "
                f"{r['stored_gate_seed0']} |")  # fmt: skip
    lines += ["", "| arch | head | stored gate, seeds failed: " + " / ".join(
        f"loss floor {f:g}" for f in LOSS_FLOORS) + " |", "|---|---|---|"]  # fmt: skip
    for arch, entry in tally["archs"].items():
        for condition, r in entry["conditions"].items():
            cells = " / ".join(f"{g['failed']}" for g in r["stored_gate"].values())
            lines.append(f"| {arch} | `{condition}` | {cells} (of {r['seeds']}) |")
    for arch, entry in tally["archs"].items():
        found = (entry["noise"] or {}).items()
        parts = {k: n for k, n in found if isinstance(n, dict) and "images" in n}
        said = [
            f"{name}: sd {n['sd'] * 100:.2f} points, test set {n['test_set_sd'] * 100:.2f} "
            f"({n['test_set_share']:.0%} of the variance)"
            for name, n in parts.items()
        ]
        if said:
            lines.append(f"\n{arch}, seeds of `none`: " + "; ".join(said))
    return "\n".join(lines)


def export(out: Path, to: Path) -> list[Path]:
    """Write the base's records for `python -m bench baseline`, marked as sharing a machine."""
    import dataclasses

    from bench.storage.records import from_json, save

    written = []
    for arch_dir in sorted((out / "runs").iterdir()):
        for seed, row in sorted(_done(arch_dir / "none.jsonl").items()):  # or .jsonl.gz
            record = from_json(row["record"])
            shared = dataclasses.replace(record.provenance, concurrent_runs=1)
            path = to / arch_dir.name / f"seed{seed}" / "record.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(save(dataclasses.replace(record, provenance=shared), path))
    return written


def main(argv: list[str] | None = None) -> int:
    """Train the runs, or count them (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "count", "export"))
    parser.add_argument("--to", type=Path, help="export: the folder for the records")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--seeds", default="0-19", help="FIRST-LAST")
    parser.add_argument("--worker", default="0/1", help="i/n: this process trains every n-th")
    parser.add_argument("--seeds-a-side", type=int, default=None)
    parser.add_argument("--disjoint", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--grid",
        action="store_true",
        help="count: also tally other seeds a side and loss thresholds",
    )
    args = parser.parse_args(argv)
    if args.what == "train":
        worker, _, workers = args.worker.partition("/")
        train(args.out, args.archs.split(","), args.conditions.split(","), _seeds(args.seeds),
              int(worker), int(workers))  # fmt: skip
        return 0
    if args.what == "export":
        print(f"{len(export(args.out, args.to))} records written under {args.to}")
        return 0
    from bench.compare.accuracy import DEFAULT_SEEDS

    count(args.out, args.seeds_a_side or DEFAULT_SEEDS, args.disjoint, args.markdown)
    if args.grid:
        print(_grid(args.out, args.disjoint))
    return 0


GRID = ((3, 0.10), (3, 0.15), (5, 0.10), (5, 0.15), (5, 0.20), (6, 0.10), (6, 0.15),
        (6, 0.20))  # fmt: skip
"""(seeds a side at first, loss threshold) tried beside the defaults; twice as many seeds
when the first cannot tell, as the comparison does; accuracy's threshold as shipped."""


def _grid(out: Path, disjoint: bool) -> str:
    """Return a table: per setting, per architecture and head, regression / ok / cannot tell."""
    from bench.compare.accuracy import ACCURACY_THRESHOLD

    rows = ["| seeds a side | loss threshold | " + " | ".join(
        f"{a} `{c}`" for a, c in _heads(out)) + " |",
        "|---:|---:|" + "---|" * len(_heads(out))]  # fmt: skip
    for k, loss in GRID:
        tally = count(out, k, disjoint, False, (ACCURACY_THRESHOLD, loss))
        cells = []
        for arch, condition in _heads(out):
            r = tally["archs"][arch]["conditions"][condition]["verdicts"]
            cells.append(f"{r['regression']} / {r['ok']} / {r['unclear']}")
        rows.append(f"| {k} | {loss:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _heads(out: Path) -> list[tuple[str, str]]:
    return [(d.name, _name(p)) for d in sorted((out / "runs").iterdir())
            for p in _files(d) if _name(p) != "none"]  # fmt: skip


def _plain(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".gz"))


def _name(path: Path) -> str:
    return _plain(path).name.removesuffix(".jsonl").replace("@", ":")


def _files(folder: Path) -> list[Path]:
    """One path per head: its `.jsonl` or `.jsonl.gz` (`_done` reads both)."""
    return sorted({_plain(p): p for p in folder.glob("*.jsonl*")}.values())


if __name__ == "__main__":
    sys.exit(main())
