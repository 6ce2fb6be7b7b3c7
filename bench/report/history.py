"""The history across commits: results kept by commit, trends, change points, comparisons.

Results are pytest-benchmark's own saved runs (`pytest bench --benchmark-autosave
--benchmark-storage=file://results/history`, as `./run.sh gate` does): one JSON file per run,
with the commit (`commit_info`) and, per benchmark, the harness's figures (`extra_info`,
`bench.measurement.metrics`). This module reads every such file under the folders given,
groups results by commit (in commit-time order) and architecture, and per metric:

* draws the trend (x: commits, labelled with short hash and date; every seed a dot);
* finds change points by sequential step detection: each commit's values against the
  segment before it (the commits since the last change point, at most `WINDOW`), a change
  point when Welch's t-test gives p < `ALPHA` *and* the means differ by at least the metric's
  `MIN_CHANGE` (so tiny but consistent shifts of a deterministic metric do not count); a step
  that shows only a commit or two later is placed, among the splits that pass the same test,
  at the sharpest (binary segmentation's pooled t criterion). It needs 2+ seeds
  at a commit; commits with one are drawn but not tested;
* compares the latest commit with the best, the previous or a named one.

Files written by older harness versions lack some figures (time-to-target before record
version 3): those points are missing, and said. Files that are not cnnbench results are
listed as unreadable, with why.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
from tabulate import tabulate

from bench.measurement.stats import welch_p
from bench.storage import schema

METRICS = {
    "test_accuracy": ("test accuracy", "higher"),
    "seconds_to_target": ("training seconds to target", "lower"),
    "efficiency": ("efficiency (fraction of matmul peak)", "higher"),
}
"""metric in `extra_info` -> (axis label, which direction is better)."""
MIN_CHANGE = {"test_accuracy": 0.01, "seconds_to_target": 0.25, "efficiency": 0.10}
"""The smallest relative change of the mean that counts as a change point. Time to target is
wider: at the ci budget the target falls in the first, compiling epoch, whose time varies
between seeds far more than a steady epoch's (2.2 on six commits here: 3.8 to 6.2 s for the
same code, against efficiency's 0.21 to 0.24)."""
ALPHA = 0.01
WINDOW = 5


@dataclass
class Commit:
    """The results of one commit: per architecture, per metric, one value per run."""

    id: str
    time: str
    dirty: bool = False
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short hash and date, for axes and tables."""
        return f"{self.id[:7]}{'+' if self.dirty else ''}\n{self.time[:10]}"


@dataclass(frozen=True)
class ChangePoint:
    """A commit where a metric of an architecture stepped away from the segment before it."""

    arch: str
    metric: str
    commit: str
    before: float
    after: float
    p_value: float

    @property
    def relative(self) -> float:
        """Signed relative change of the mean (the absolute change from a mean of 0)."""
        return (self.after - self.before) / (abs(self.before) or 1.0)


def load(folders: Sequence[Path]) -> tuple[list[Commit], list[str]]:
    """Read saved benchmark runs under `folders`; return commits in order, and problems."""
    commits: dict[str, Commit] = {}
    problems: list[str] = []
    files = sorted(p for folder in folders for p in
                   ([folder] if folder.is_file() else folder.rglob("*.json")))  # fmt: skip
    for path in files:
        try:
            document = schema.read_json(path, ValueError, "pytest-benchmark result")
            info = document["commit_info"]
            rows = [b["extra_info"] for b in document["benchmarks"]]
            if not isinstance(info, dict) or not isinstance(info.get("id", ""), str):
                raise TypeError("commit_info is not an object with a string id")
        except (ValueError, KeyError, TypeError) as error:
            problems.append(f"{path}: not a pytest-benchmark result ({type(error).__name__}: "
                            f"{str(error)[:200]})")  # fmt: skip
            continue
        rows = [row for row in rows if isinstance(row, dict) and isinstance(row.get("arch"), str)
                and schema.SAFE_NAME.match(row["arch"])]  # fmt: skip
        planted = [row for row in rows if row.get("plant", "none") != "none"]
        if planted:
            problems.append(f"{path}: {len(planted)} run(s) with a planted regression, left out")
            rows = [row for row in rows if row not in planted]
        if not rows:
            problems.append(f"{path}: no cnnbench results in it (no extra_info.arch)")
            continue
        if not info.get("id"):
            problems.append(f"{path}: saved outside a git checkout (no commit id)")
            continue
        commit = commits.setdefault(
            info["id"],
            Commit(
                info["id"],
                str(info.get("time") or document.get("datetime", "")),
                bool(info.get("dirty")),
            ),
        )
        missing = set()
        for row in rows:
            per_arch = commit.values.setdefault(row["arch"], {})
            for metric in METRICS:
                value = row.get(metric)
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and (math.isfinite(value))
                ):
                    per_arch.setdefault(metric, []).append(float(value))
                elif metric not in row:
                    missing.add(metric)
        if missing:
            problems.append(f"{path}: written by an older harness without {sorted(missing)}")
    return sorted(commits.values(), key=lambda c: _when(c.time)), problems


def _when(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)


def archs(commits: Sequence[Commit]) -> list[str]:
    """Return every architecture with a result, in first-seen order."""
    return list(dict.fromkeys(a for c in commits for a in c.values))


def series(commits: Sequence[Commit], arch: str, metric: str) -> list[list[float]]:
    """Return one metric of one architecture, per commit ([] where there is none)."""
    return [c.values.get(arch, {}).get(metric, []) for c in commits]


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
    return welch_p(before, after) < ALPHA and abs(new - old) / abs(old) >= MIN_CHANGE[metric]


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


def change_points(commits: Sequence[Commit]) -> list[ChangePoint]:
    """Find change points for every architecture and metric (see the module docstring).

    A step is often significant only once a commit or two after it have been measured; it is
    then placed at the sharpest split (lowest p) among the commits since the segment began,
    not at the commit that made it visible.
    """
    found = []
    for arch in archs(commits):
        for metric in METRICS:
            values = series(commits, arch, metric)
            start = next((i for i, v in enumerate(values) if v), len(values))
            for end in range(start + 1, len(values)):
                if not _steps(values, start, end, end, metric):
                    continue
                passing = [k for k in range(start + 1, end + 1)
                           if _steps(values, start, k, end, metric)]  # fmt: skip
                split = max(passing, key=lambda k: _sharpness(*_split(values, start, k, end)))
                before, after = _split(values, start, split, end)
                old, new = statistics.fmean(before), statistics.fmean(after)
                found.append(ChangePoint(arch, metric, commits[split].id, old, new,
                                         welch_p(before, after)))  # fmt: skip
                start = split
    return found


def figure(commits: Sequence[Commit], arch: str, points: Sequence[ChangePoint]) -> Figure:
    """Accuracy, time-to-target and efficiency of one architecture across commits."""
    fig = Figure(figsize=(max(7, 0.9 * len(commits)), 8))
    axes = fig.subplots(len(METRICS), 1, sharex=True)
    for ax, (metric, (label, better)) in zip(axes, METRICS.items(), strict=True):
        values = series(commits, arch, metric)
        for index, found in enumerate(values):
            ax.plot([index] * len(found), found, "o", color="tab:blue", alpha=0.5, markersize=4)
        means = [(i, statistics.fmean(v)) for i, v in enumerate(values) if v]
        if means:
            ax.plot(*zip(*means, strict=True), "-", color="tab:blue", label="mean over seeds")
        for point in (p for p in points if p.arch == arch and p.metric == metric):
            index = next(i for i, c in enumerate(commits) if c.id == point.commit)
            ax.axvline(index - 0.5, color="tab:red", linestyle="--",
                       label=f"change point {point.commit[:7]}: {point.relative:+.1%}")  # fmt: skip
        ax.set(ylabel=label, title=f"{label} ({better} is better)")
        ax.grid(True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[-1].set_xticks(range(len(commits)), [c.label for c in commits], fontsize=7)
    axes[-1].set_xlabel("commit (in commit order)")
    fig.suptitle(f"{arch} across commits")
    fig.tight_layout()
    return fig


def compare(commits: Sequence[Commit], against: str = "previous") -> str:
    """Return a table of the latest commit against the best, the previous or a named one."""
    if len(commits) < 2 and against == "previous":
        return "only one commit: nothing to compare"
    latest, rows = commits[-1], []
    for arch in archs(commits):
        for metric, (_, better) in METRICS.items():
            now = latest.values.get(arch, {}).get(metric)
            if not now:
                continue
            earlier = zip(commits[:-1], series(commits[:-1], arch, metric), strict=True)
            means = [(c, statistics.fmean(v)) for c, v in earlier if v]
            if against == "previous":
                reference = means[-1] if means else None
            elif against == "best":
                pick = max if better == "higher" else min
                reference = pick(means, key=lambda m: m[1]) if means else None
            else:
                reference = next(((c, m) for c, m in means if c.id.startswith(against)), None)
            if reference is None:
                continue
            mean = statistics.fmean(now)
            change = (f"{(mean - reference[1]) / abs(reference[1]):+.1%}" if reference[1]
                      else f"{mean - reference[1]:+.4f} (from 0)")  # fmt: skip
            rows.append([arch, metric, f"{reference[0].id[:7]}", reference[1], mean, change])
    if not rows:
        return f"nothing to compare against ({against!r} matched no earlier commit)"
    headers = ["arch", "metric", f"{against} commit", "then", f"latest ({latest.id[:7]})",
               "change"]  # fmt: skip
    return tabulate(rows, headers=headers, floatfmt=".4f")
