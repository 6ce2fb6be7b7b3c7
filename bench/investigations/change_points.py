"""Measure change-point detectors on labelled histories: ours (Welch steps) against Otava's.

    python -m bench.investigations.change_points [--trials 200] [--out docs/measurements/...]

Synthetic histories of `LENGTH` commits with one planted step of known size and place (or
none), in noise drawn from this project's own recorded runs: the relative deviations of
model_1_a's training seconds (`train_seconds_total`) and test accuracies at the `ci` budget in
`docs/measurements/stored-gate` (a 5-seed baseline, 10 honest reruns and 16 planted runs of
other seeds, whose accuracies the plants leave untouched: 31 accuracies, 15 training times),
resampled with replacement, so the slow mode these machines fall into (+41% once in 15) is in
the noise as often as it was seen. Each commit has 1 or 3 seeds, as a history made by
`./run.sh gate` (one seed) or by a study (several) has.

A detection is right when it lies within `TOLERANCE` commits of the planted step; precision is
right detections over all detections, recall the fraction of planted steps found; the null
series (no step) give the false alarms per history. Methods: `welch` (bench.report.history's
own sequential detector: it needs 2+ seeds at a commit), `otava` (Apache Otava's E-Divisive
means with its t-test, `otava.analysis.compute_change_points`, its default p < 0.001, on each
commit's mean), `otava-p0.01`, and `history` (what bench.report.history ships: Otava at its
default, then each metric's `MIN_CHANGE`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.report import history
from bench.stats import welch_p

ALPHA = 0.01
WINDOW = 5
"""The Welch detector's level and longest segment before a split, as it shipped."""
LENGTH = 30
TOLERANCE = 1
STEPS = {
    "train_seconds_total": (0.0, 0.05, 0.10, 0.20, 0.40),
    "test_accuracy": (0.0, -0.005, -0.01, -0.02, -0.04),
}
"""Planted steps, relative to the mean (training: slower; accuracy: absolute drop / mean)."""


def recorded(folder: Path, metric: str) -> list[float]:
    """Return the recorded values of `metric` for distinct seeds in the stored-gate tally."""
    values: dict[int, float] = {}
    baseline = next((folder / "baselines").rglob("*.json"))
    stats = json.loads(baseline.read_text())["archs"]["model_1_a"][metric]
    values.update(dict(enumerate(stats["values"])))
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text())
        if metric != "test_accuracy" and document["plant"] != "none":
            continue  # a speed plant changes the time, not the accuracy
        observed = next(c["observed"] for c in document["checks"] if c["metric"] == metric)
        values[document["seed"]] = observed
    return list(values.values())


def noise(values: list[float]) -> np.ndarray:
    """Relative deviations from the median."""
    centre = statistics.median(values)
    return np.asarray(values) / centre - 1


def synthetic(rng: np.random.Generator, deviations: np.ndarray, step: float,
              seeds: int) -> tuple[list[list[float]], int | None]:  # fmt: skip
    """Return one history (per commit, its seeds' values) and where its step is (None: none)."""
    place = int(rng.integers(8, LENGTH - 7)) if step else None
    commits = []
    for index in range(LENGTH):
        level = 1 + (step if place is not None and index >= place else 0)
        commits.append(list(level + rng.choice(deviations, size=seeds)))
    return commits, place


# The sequential Welch step detector bench.report.history had until Otava replaced it.


def _split(
    values: Sequence[list[float]], start: int, split: int, end: int
) -> tuple[list[float], list[float]]:
    before = [x for v in values[max(start, split - WINDOW) : split] for x in v]
    return before, [x for v in values[split : end + 1] for x in v]


def _steps(values: Sequence[list[float]], start: int, split: int, end: int, metric: str) -> bool:
    """Whether commits [split, end] stepped away from the segment before `split`."""
    before, after = _split(values, start, split, end)
    if len(before) < 2 or len(after) < 2 or not statistics.fmean(before):
        return False
    old, new = statistics.fmean(before), statistics.fmean(after)
    return (
        welch_p(before, after) < ALPHA and abs(new - old) / abs(old) >= history.MIN_CHANGE[metric]
    )


def _sharpness(before: list[float], after: list[float]) -> float:
    """Return the pooled-variance t statistic of a split (binary segmentation's criterion).

    Pooled, not Welch's: a split that leaves the spread-out commit on the wrong side would
    otherwise win on the tidy side's small variance.
    """
    if len(before) < 2 or len(after) < 2:
        return 0.0
    from scipy import stats

    statistic = stats.ttest_ind(before, after, equal_var=True).statistic
    return abs(float(statistic)) if math.isfinite(statistic) else math.inf


def welch_change_points(commits: Sequence[history.Commit]) -> list[history.ChangePoint]:
    """Find change points for every architecture and metric (see the module docstring).

    A step is often significant only once a commit or two after it have been measured; it is
    then placed at the sharpest split (lowest p) among the commits since the segment began,
    not at the commit that made it visible.
    """
    found = []
    for arch in history.archs(commits):
        for metric in history.METRICS:
            values = history.series(commits, arch, metric)
            start = next((i for i, v in enumerate(values) if v), len(values))
            for end in range(start + 1, len(values)):
                if not _steps(values, start, end, end, metric):
                    continue
                passing = [k for k in range(start + 1, end + 1)
                           if _steps(values, start, k, end, metric)]  # fmt: skip
                split = max(passing, key=lambda k: _sharpness(*_split(values, start, k, end)))
                before, after = _split(values, start, split, end)
                old, new = statistics.fmean(before), statistics.fmean(after)
                found.append(history.ChangePoint(arch, metric, commits[split].id, old, new,
                                         welch_p(before, after)))  # fmt: skip
                start = split
    return found


def welch(commits: list[list[float]], metric: str) -> list[int]:
    """Our detector's change points (indices of the first commit after each step)."""
    fake = [history.Commit(f"{i:040x}", f"2026-01-01T00:00:{i:02d}+00:00",
                           values={"a": {metric: v}}) for i, v in enumerate(commits)]  # fmt: skip
    found = welch_change_points(fake)
    ids = [c.id for c in fake]
    return [ids.index(p.commit) for p in found if p.metric == metric]


def shipped(commits: list[list[float]], metric: str) -> list[int]:
    """`bench.report.history.change_points` as it ships (Otava, then `MIN_CHANGE`)."""
    fake = [history.Commit(f"{i:040x}", f"2026-01-01T00:00:{i:02d}+00:00",
                           values={"a": {metric: v}}) for i, v in enumerate(commits)]  # fmt: skip
    ids = [c.id for c in fake]
    return [ids.index(p.commit) for p in history.change_points(fake) if p.metric == metric]


def otava(commits: list[list[float]], p_value: float = 0.001) -> list[int]:
    """Otava's change points on each commit's mean."""
    from otava.analysis import compute_change_points

    means = [statistics.fmean(v) for v in commits]
    points, _ = compute_change_points(means, max_pvalue=p_value)
    return [int(p.index) for p in points]


METHODS = {
    "welch": lambda commits, metric: welch(commits, metric),
    "otava": lambda commits, metric: otava(commits),
    "otava-p0.01": lambda commits, metric: otava(commits, 0.01),
    "history": shipped,
}


def tally(trials: int, folder: Path, seed: int = 0) -> list[dict]:
    """Run every method on the same histories; return one row per metric, seeds, step, method."""
    rows = []
    for metric, steps in STEPS.items():
        deviations = noise(recorded(folder, metric))
        for seeds in (1, 3):
            for step in steps:
                rng = np.random.default_rng([seed, seeds, int(abs(step) * 1000)])
                histories = [synthetic(rng, deviations, step, seeds) for _ in range(trials)]
                for method, detect in METHODS.items():
                    right = found_any = detections = 0
                    for commits, place in histories:
                        points = detect(commits, metric)
                        detections += len(points)
                        hits = [p for p in points if place is not None
                                and abs(p - place) <= TOLERANCE]  # fmt: skip
                        right += len(hits[:1])
                        found_any += bool(hits)
                    rows.append({"metric": metric, "seeds": seeds, "step": step,
                                 "method": method, "trials": trials,
                                 "detections": detections, "right": right,
                                 "recall": found_any / trials if step else None,
                                 "precision": right / detections if detections else None,
                                 "false_alarms_per_history":
                                     (detections - right) / trials})  # fmt: skip
    return rows


def main() -> None:
    """Tally, write the rows as JSON and print them as a table."""
    from tabulate import tabulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--noise", type=Path, default=Path("docs/measurements/stored-gate"))
    parser.add_argument("--out", type=Path,
                        default=Path("docs/measurements/change-points/synthetic.json"))  # fmt: skip
    args = parser.parse_args()
    rows = tally(args.trials, args.noise)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:.0%}"

    print(tabulate([[r["metric"], r["seeds"], f"{r['step']:+.1%}", r["method"],
                     pct(r["precision"]), pct(r["recall"]),
                     f"{r['false_alarms_per_history']:.2f}"] for r in rows],
                   headers=["metric", "seeds", "step", "method", "precision", "recall",
                            "false alarms / history"], tablefmt="github"))  # fmt: skip


if __name__ == "__main__":
    main()
