"""The report: the notebook's figures, correctly labelled, and an honest comparison.

`python -m bench report RECORDS... -o DIR` writes PNGs (`bench.report.figures`) and `report.md`: a
results table, what the evidence (seeds, Welch's t-test) supports, reduced precision judged
against float32 by the gate's own band, and which of the notebook's comparisons are
confounded (from the registry's quirks). A record that lacks what one figure needs costs that
figure (with a message in the report), never the rest of the report.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from tabulate import tabulate

from archs import NOTEBOOK_IDS, REGISTRY
from archs._blocks import Drop
from bench.measurement import bands, metrics
from bench.report import figures
from bench.report.groups import Group, group_records
from bench.stats import describe, welch_p
from bench.storage import layout, targets
from bench.storage.atomic import atomic_write
from bench.storage.baselines import MetricStats, Tolerance


def load_published(path: Path | None = None) -> dict[str, Any]:
    """Return the notebook's published results by architecture id ({} if the file is absent)."""
    path = path or layout.published_path()
    return json.loads(path.read_text())["models"] if path.exists() else {}


@dataclass(frozen=True)
class Verdict:
    """Whether a regulariser helps at one depth, with the evidence."""

    claim: str
    depth: int
    n_with: int
    n_without: int
    difference: float | None
    p_value: float | None
    text: str


def _too_few(a: Sequence[float], b: Sequence[float]) -> str:
    return f"too few runs to tell ({len(a)} vs {len(b)} seeds; need 2+ each, 5+ to trust)"


def compare(groups: Sequence[Group], with_id: str, without_id: str, claim: str) -> Verdict | None:
    """Return whether `with_id` beats `without_id` on test accuracy (Welch's t-test)."""
    by_id = {g.arch_id: g for g in groups}
    if with_id not in by_id or without_id not in by_id:
        return None
    a, b = by_id[with_id].accuracies, by_id[without_id].accuracies
    depth = REGISTRY[with_id].conv_layers
    if len(a) < 2 or len(b) < 2:
        return Verdict(claim, depth, len(a), len(b), None, None, _too_few(a, b))
    diff, p = statistics.fmean(a) - statistics.fmean(b), welch_p(a, b)
    if p < 0.05:
        text = f"{'supported' if diff > 0 else 'contradicted'}: {diff:+.4f} (Welch p = {p:.3g})"
    else:
        text = f"not supported: {diff:+.4f}, within seed noise (Welch p = {p:.3g})"
    return Verdict(claim, depth, len(a), len(b), diff, p, text)


CLAIMS = (
    ("dropout helps", "dropout", "plain"),
    ("batch normalization helps", "bn", "plain"),
    ("batch normalization helps (with dropout)", "bn_dropout", "dropout"),
)
NOTEBOOK_PAIRS = tuple(zip(NOTEBOOK_IDS[1::2], NOTEBOOK_IDS[0::2], strict=True))
"""(with dropout, without) for each depth of the notebook: (model_1_b, model_1_a), ..."""


def _dropout_only(with_id: str, without_id: str) -> bool:
    """Whether two architectures differ by their dropout layers alone."""
    stripped = tuple(s for s in REGISTRY[with_id].plan if not isinstance(s, Drop))
    return stripped == REGISTRY[without_id].plan


def verdicts(groups: Sequence[Group]) -> list[Verdict]:
    """Return dropout and batch-norm verdicts per depth: controlled pairs, then notebook pairs."""
    found = []
    for depth in (3, 5, 7):
        for claim, with_v, without_v in CLAIMS:
            verdict = compare(groups, f"ctrl_{depth}_{with_v}", f"ctrl_{depth}_{without_v}", claim)
            if verdict:
                found.append(verdict)
    for with_id, without_id in NOTEBOOK_PAIRS:
        note = "dropout only" if _dropout_only(with_id, without_id) else "confounded, see below"
        claim = f"notebook: {with_id} (dropout) beats {without_id} ({note})"
        verdict = compare(groups, with_id, without_id, claim)
        if verdict:
            found.append(verdict)
    return found


def precision_verdicts(groups: Sequence[Group], tolerance: Tolerance | None = None) -> list[str]:
    """Say whether each reduced-precision group keeps the accuracy of its float32 twin.

    A twin is the float32 group of the same architecture and budget. The evidence: how many
    reduced-precision runs fall inside float32's accuracy and loss bands (the gate's rule,
    `bench.storage.baselines.Tolerance`), and Welch's t-test on final test accuracy.
    """
    tolerance = tolerance or Tolerance()
    float32 = {(g.arch_id, g.budget_name): g for g in groups if g.precision == "float32"}
    lines = []
    for group in groups:
        twin = float32.get((group.arch_id, group.budget_name))
        if group.precision == "float32" or twin is None:
            continue
        a, b = group.accuracies, twin.accuracies
        head = f"{group.arch_id}, budget {group.budget_name}: {group.precision}"
        if len(a) < 2 or len(b) < 2:
            lines.append(f"{head} vs float32: {_too_few(a, b)}")
            continue
        ours, theirs = describe(a), describe(b)
        floor = bands.bound("test_accuracy", tolerance, MetricStats.of(b))
        ceiling = bands.bound("test_loss", tolerance, MetricStats.of(twin.losses))
        p = welch_p(a, b)
        inside = sum(value >= floor for value in a)
        loss_inside = sum(value <= ceiling for value in group.losses)
        keeps = inside == len(a) and (p >= 0.05 or ours.mean >= theirs.mean)
        lines.append(
            f"{head} {ours.mean:.4f} ± {ours.sd:.4f} (n={len(a)}) vs float32 "
            f"{theirs.mean:.4f} ± {theirs.sd:.4f} (n={len(b)}): {ours.mean - theirs.mean:+.4f}, "
            f"Welch p = {p:.3g}; {inside}/{len(a)} runs inside float32's accuracy band "
            f"(>= {floor:.4f}), {loss_inside}/{len(group.losses)} inside its loss band "
            f"(<= {ceiling:.4f}): "
            + ("keeps float32's accuracy" if keeps else "DOES NOT keep float32's accuracy")
        )
    return lines


NOTEBOOK_FIGURES = (
    "The notebook's weight plots draw layer 3 from layer 2's weights (1.2), and layers 4-7 from "
    "layers 2-5 (2.1, 3.1, 3.2); the violins here come from each named layer's own kernel."
)


def confounds(published_defects: Sequence[str]) -> list[str]:
    """Say, from the registry's quirks, which notebook comparisons are confounded, and why."""
    lines = []
    for with_id, without_id in NOTEBOOK_PAIRS:
        a, b = REGISTRY[without_id], REGISTRY[with_id]
        verdict = (
            "differs by dropout alone"
            if _dropout_only(with_id, without_id)
            else "is NOT a dropout-only comparison"
        )
        quirks = " ".join(dict.fromkeys((*a.quirks, *b.quirks)))
        lines.append(
            f"{a.section} vs {b.section} (`{without_id}` vs `{with_id}`) {verdict}. {quirks}"
        )
    return [*lines, *published_defects, NOTEBOOK_FIGURES]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def table(groups: Sequence[Group], published: dict[str, Any]) -> str:
    """Return the results table (Markdown), one row per architecture and budget."""
    rows = []
    for group in groups:
        accs = group.accuracies
        summary = describe(accs) if accs else None
        pub = published.get(group.arch_id, {}).get("test_accuracy")
        derived = [metrics.of(run) for run in group.runs]
        epoch_s = _mean([d.median_epoch_seconds for d in derived])
        sps = _mean([d.median_samples_per_second for d in derived])
        eff = _mean([d.efficiency for d in derived])
        rss = max((d.peak_rss_mb or 0 for d in derived), default=0)
        device = max((d.peak_device_memory_mb or 0 for d in derived), default=0)
        memory = f"{rss:,.0f} host" if rss else ""
        memory += f" / {device:,.0f} device" if device else ""
        first = group.runs[0]
        rows.append([
            group.arch_id,
            f"{first.arch.params:,}",
            group.budget,
            first.config.budget.epochs,
            f"{summary.mean:.4f} ± {summary.sd:.4f} (n={summary.n})" if summary
            else "no completed run",
            f"{pub:.4f}" if pub is not None else "",
            f"{summary.mean - pub:+.4f}" if pub is not None and summary else "",
            f"{epoch_s:.2f}" if epoch_s else "",
            f"{sps:,.0f}" if sps else "",
            f"{eff:.2f}" if eff else "",
            _reached(group),
            memory,
        ])  # fmt: skip
    headers = ["arch", "params", "budget", "epochs", "test accuracy (mean ± sd)", "published",
               "difference", "median s / epoch", "median samples / s",
               "fraction of peak (best epoch)", "target reached (median time)",
               "peak memory (MiB)"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github")


def _figures(groups: Sequence[Group], published: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Return (what, file name, drawing function) for every figure of the report."""
    planned: list[tuple[str, str, Callable[[], Figure]]] = []
    for budget in sorted({g.budget for g in groups}):
        in_budget = [g for g in groups if g.budget == budget]
        planned += [
            (f"accuracy vs depth ({budget})", f"accuracy_vs_depth_{budget}.png",
             lambda b=budget, i=in_budget: figures.depth(i, published, b)),
            (f"speed ({budget})", f"speed_{budget}.png",
             lambda b=budget, i=in_budget: figures.speed(i, b)),
        ]  # fmt: skip
    for group in groups:
        name = f"{group.budget}_{group.arch_id}.png"
        planned += [
            (f"curves {group.arch_id} ({group.budget})", f"curves_{name}",
             lambda g=group: figures.curves(g, published)),
            (f"weights {group.arch_id} ({group.budget})", f"weights_{name}",
             lambda g=group: figures.weights(g)),
            (f"time to accuracy {group.arch_id} ({group.budget})", f"time_to_accuracy_{name}",
             lambda g=group: figures.time_to_accuracy(g, _target(g))),
        ]  # fmt: skip
    return planned


def _target(group: Group) -> float | None:
    reached = [r.time_to_target for r in group.runs if r.time_to_target]
    if reached:
        return reached[0].target
    target = targets.load().for_budget(group.budget_name)
    return target.test_accuracy if target else None


def _reached(group: Group) -> str:
    """Say how many runs reached their target, and when (median epochs and seconds)."""
    known = [r.time_to_target for r in group.runs if r.time_to_target]
    if not known:
        return ""
    hits = [t for t in known if t.reached]
    text = f"{len(hits)}/{len(known)} ≥ {known[0].target:g}"
    if hits:
        epochs = statistics.median(t.epochs for t in hits if t.epochs is not None)
        seconds = statistics.median(t.train_seconds for t in hits if t.train_seconds is not None)
        text += f": {epochs:g} epochs, {seconds:.1f} s"
    return text


def _evidence(groups: Sequence[Group]) -> list[str]:
    lines = [
        "Welch's t-test on final test accuracy over the seeds run, per budget. These verdicts "
        "hold for the budget named: dropout and batch normalization change how fast a model "
        "learns as well as where it ends, and a short budget measures the first more than "
        "the second.",
        "",
    ]
    found = False
    for budget in sorted({g.budget for g in groups}):
        for verdict in verdicts([g for g in groups if g.budget == budget]):
            found = True
            lines.append(
                f"- **{verdict.claim}** at {verdict.depth} conv layers, budget {budget}: "
                f"{verdict.text}."
            )
    if not found:
        lines.append("No pair of comparable runs was given; nothing can be concluded.")
    return lines


def write_report(paths: Sequence[Path], out: Path, published_path: Path | None = None) -> Path:
    """Write the figures and `report.md` for the given run records; return the report path."""
    out.mkdir(parents=True, exist_ok=True)
    published_path = published_path or layout.published_path()
    published = load_published(published_path)
    defects = json.loads(published_path.read_text()).get("defects", []) if published else []
    groups, problems = group_records(paths)
    drawn: list[tuple[str, Path]] = []
    for what, filename, draw in _figures(groups, published):
        try:
            figures.save(draw(), out / filename)
            drawn.append((what, out / filename))
        except Exception as error:  # one figure's failure must not cost the rest of the report
            problems.append(f"{what}: not drawn: {error}")
    lines = ["# CNN architectures on MNIST: measured against the notebook", ""]
    if not groups:
        lines += ["No valid run records were given.", ""]
    else:
        seeds = sorted({r.config.seed for g in groups for r in g.runs})
        prov = groups[0].runs[0].provenance
        lines += [
            f"{sum(len(g.runs) for g in groups)} runs, seeds {seeds}, backend {prov.backend}, "
            f"device {prov.device.name}, Keras {prov.versions.get('keras')}. Published "
            "numbers are the notebook's single full-budget runs; a smaller budget is not "
            "expected to reach them.",
            "",
            "## Results",
            "",
            table(groups, published),
            "",
            "## What the evidence supports",
            "",
            *_evidence(groups),
        ]
        kept = precision_verdicts(groups)
        if kept:
            lines += ["", "## Reduced precision against float32", ""]
            lines += [f"- {line}." for line in kept]
        lines += ["", "## Which of the notebook's comparisons are confounded", ""]
        lines += [f"- {item}" for item in confounds(defects)]
    lines += ["", "## Figures", ""]
    for what, path in drawn:
        lines += [f"### {what}", "", f"![{what}]({path.name})", ""]
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    report = out / "report.md"
    with atomic_write(report, "w") as handle:
        handle.write("\n".join(lines))
    return report
