"""The history across commits: results kept by commit, trends, change points, comparisons.

Results are pytest-benchmark's own saved runs (`pytest bench --benchmark-autosave
--benchmark-storage=file://results/history`, as `./run.sh gate` does): one JSON file per run,
with the commit (`commit_info`) and, per benchmark, the harness's figures (`extra_info`,
`bench.measurement.metrics`). This module reads every such file under the folders given,
groups results by commit (in commit-time order) and architecture, and per metric:

* draws the trend (x: commits, labelled with short hash and date; every seed a dot);
* finds change points with Apache Otava's detector (E-Divisive means, then Student's t-test
  between the segments it proposes, p < `ALPHA`; `otava.analysis.compute_change_points`), on
  each commit's mean over its seeds, keeping those whose means differ by at least the metric's
  `MIN_CHANGE` (so tiny but consistent shifts of a deterministic metric do not count). Each is
  an improvement or a regression by the metric's better direction. Chosen over the
  sequential Welch step detector this module had, measured on labelled histories in this
  project's own noise (`bench.investigations.change_points`; docs/measurements/change-points):
  Otava found more planted steps with fewer false alarms, and works with one seed a commit,
  which is what `./run.sh gate` saves. Otava's package pins numpy 2.2 and brings database and
  chat clients for its command line; its detector needs numpy and scipy only, so it is
  installed without its dependencies (`./run.sh setup`), pinned in constraints.txt;
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

from bench.storage import schema

METRICS = {
    "test_accuracy": ("test accuracy", "higher"),
    "train_seconds_total": ("training seconds", "lower"),
    "eval_seconds_total": ("evaluation seconds", "lower"),
    "seconds_to_target": ("training seconds to target", "lower"),
    "efficiency": ("efficiency (fraction of matmul peak)", "higher"),
}
"""metric in `extra_info` -> (axis label, which direction is better)."""
MIN_CHANGE = {"test_accuracy": 0.005, "train_seconds_total": 0.05, "eval_seconds_total": 0.05,
              "seconds_to_target": 0.25, "efficiency": 0.10}  # fmt: skip
"""The smallest relative change of the mean that counts as a change point. Accuracy's is half
the stored gate's least band (0.01 absolute at ~0.93), the times' half the comparison's
threshold: a history is for the persistent changes too small for one run's gate (measured in
docs/measurements/change-points: at 0.01 the shipped detector found 52% of 1% accuracy steps
in 3-seed histories, Otava alone 96%). Time to target is wider: at the ci budget the target
falls in the first, compiling epoch, whose time varies between seeds far more than a steady
epoch's (2.2 on six commits here: 3.8 to 6.2 s for the
same code, against efficiency's 0.21 to 0.24)."""
ALPHA = 0.001
"""Otava's significance level (its default): measured the best of those tried (the module
docstring)."""
MIN_COMMITS = 4
"""Fewer commits with a metric than this: no change point is looked for."""
OTAVA_VERSION = "0.8.0"


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
    better: str = "higher"
    """Which direction of the metric is better (`METRICS`)."""

    @property
    def relative(self) -> float:
        """Signed relative change of the mean (the absolute change from a mean of 0)."""
        return (self.after - self.before) / (abs(self.before) or 1.0)

    @property
    def kind(self) -> str:
        """'improvement' or 'regression'."""
        up = self.after > self.before
        return "improvement" if up == (self.better == "higher") else "regression"


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


def _otava(means: Sequence[float]) -> list[tuple[int, float, float, float]]:
    """Return Otava's change points: (first index after the step, mean before, after, p)."""
    from otava.analysis import compute_change_points

    points, _ = compute_change_points(list(means), max_pvalue=ALPHA)
    return [(int(p.index), float(p.stats.mean_1), float(p.stats.mean_2), float(p.stats.pvalue))
            for p in points]  # fmt: skip


def available() -> str | None:
    """Return why change points cannot be found here (Otava missing), or None when they can."""
    try:
        import otava.analysis  # noqa: F401
    except ImportError:
        return (
            f"change points need Apache Otava's detector: pip install --no-deps "
            f"apache-otava=={OTAVA_VERSION} (./run.sh setup installs it; see {__name__})"
        )
    return None


def change_points(commits: Sequence[Commit]) -> list[ChangePoint]:
    """Find change points for every architecture and metric (see the module docstring).

    On each commit's mean over its seeds (commits without the metric are left out of its
    series); a change smaller than the metric's `MIN_CHANGE` is not one.
    """
    found = []
    for arch in archs(commits):
        for metric, (_, better) in METRICS.items():
            measured = [(c, statistics.fmean(v))
                        for c, v in zip(commits, series(commits, arch, metric), strict=True)
                        if v]  # fmt: skip
            if len(measured) < MIN_COMMITS:
                continue
            for index, before, after, p_value in _otava([m for _, m in measured]):
                if before and abs(after - before) / abs(before) < MIN_CHANGE[metric]:
                    continue
                found.append(ChangePoint(arch, metric, measured[index][0].id, before, after,
                                         p_value, better))  # fmt: skip
    return found


def figure(commits: Sequence[Commit], arch: str, points: Sequence[ChangePoint]) -> Figure:
    """Accuracy, time-to-target and efficiency of one architecture across commits."""
    fig = Figure(figsize=(max(7, 0.9 * len(commits)), 2.2 * len(METRICS)))
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
            colour = "tab:red" if point.kind == "regression" else "tab:green"
            ax.axvline(index - 0.5, color=colour, linestyle="--",
                       label=f"{point.kind} {point.commit[:7]}: {point.relative:+.1%}")  # fmt: skip
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
