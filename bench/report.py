"""The report: the notebook's figures, correctly labelled, and an honest comparison.

`python -m bench report RECORDS... -o DIR` writes PNGs and `report.md`; the comparison says
what the evidence (seeds, Welch's t-test) supports.

A record that lacks what one figure needs costs that figure (with a message in the report),
never the rest of the report. Figures use matplotlib's Figure directly (no pyplot), so nothing
needs a display.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy import stats
from tabulate import tabulate

from archs import REGISTRY
from bench import records as records_mod
from bench.atomic import atomic_write
from bench.gate import Tolerance, describe

PUBLISHED = Path(__file__).resolve().parent.parent / "baselines" / "published" / "notebook.json"
VIOLIN_SAMPLE = 20_000


def load_published(path: Path = PUBLISHED) -> dict[str, Any]:
    """Return the notebook's published results by architecture id ({} if the file is absent)."""
    if not path.exists():
        return {}
    return json.loads(path.read_text())["models"]


@dataclass
class Group:
    """The runs of one architecture under one budget and precision (one per seed).

    `budget` is the budget's name, suffixed with the precision when that is not float32
    (`ci-mixed_bfloat16`), so runs in different precisions are never pooled or compared.
    """

    arch_id: str
    budget: str
    runs: list[dict[str, Any]]
    paths: list[Path]
    precision: str = "float32"
    budget_name: str = ""

    @property
    def accuracies(self) -> list[float]:
        """Final test accuracies of the completed runs."""
        return [r["final"]["test_accuracy"] for r in self.runs if r["status"] == "completed"]


def group_records(paths: Sequence[Path]) -> tuple[list[Group], list[str]]:
    """Load records, grouped by (architecture, budget and precision); return groups, problems."""
    problems: list[str] = []
    groups: dict[tuple[str, str], Group] = {}
    for path in paths:
        try:
            record = records_mod.load(path)
        except (records_mod.RecordError, OSError) as error:
            problems.append(f"skipped {path}: {error}")
            continue
        precision = record["config"]["precision"]
        budget = name = record["config"]["budget"]["name"]
        if precision != "float32":
            budget = f"{budget}-{precision}"
        key = (record["arch"]["id"], budget)
        group = groups.setdefault(key, Group(key[0], key[1], [], [], precision, name))
        group.runs.append(record)
        group.paths.append(Path(path))
    order = {arch_id: index for index, arch_id in enumerate(REGISTRY)}
    ordered = sorted(groups.values(), key=lambda g: (g.budget, order.get(g.arch_id, 99)))
    return ordered, problems


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    stats = describe(values)
    return stats["mean"], stats["sd"]


def curves_figure(group: Group, published: dict[str, Any]) -> Figure:
    """Epoch vs loss and epoch vs accuracy, train and test, every seed; the notebook overlaid."""
    fig = Figure(figsize=(11, 4.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    seeds = ", ".join(str(run["config"]["seed"]) for run in group.runs)
    for index, run in enumerate(group.runs):
        epochs = [e["epoch"] for e in run["epochs"]]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            for prefix, key, color in (("train", metric, "tab:blue"),
                                       ("test", f"val_{metric}", "tab:orange")):  # fmt: skip
                label = f"{prefix} {metric} (seeds {seeds})" if index == 0 else None
                values = [e[key] for e in run["epochs"]]
                ax.plot(epochs, values, "o-", color=color, alpha=0.6, label=label)
    if group.arch_id in published:
        pub = published[group.arch_id]["epochs"]
        epochs = [e["epoch"] for e in pub]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            ax.plot(
                epochs,
                [e[metric] for e in pub],
                "--",
                color="tab:blue",
                label=f"notebook train {metric} (full budget)",
            )
            ax.plot(epochs, [e[f"val_{metric}"] for e in pub], "--", color="tab:orange",
                    label=f"notebook test {metric} (full budget)")  # fmt: skip
    spec = REGISTRY.get(group.arch_id)
    title = f"{group.arch_id}" + (f" (notebook {spec.section})" if spec and spec.faithful else "")
    ax_loss.set(title=f"{title}: loss", xlabel="epoch", ylabel="categorical cross-entropy")
    ax_acc.set(title=f"{title}: accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True)
        ax.legend(fontsize=7)
    fig.suptitle(f"{group.arch_id}, budget {group.budget}, {len(group.runs)} seed(s)")
    fig.tight_layout()
    return fig


def kernels_of(run_path: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Return {layer name: flattened kernel} from the trained model stored next to a record."""
    file = record.get("weights", {}).get("file")
    if not file:
        raise ValueError("the record names no trained-model file (weights.file)")
    model_path = run_path.parent / file
    if not model_path.exists():
        raise ValueError(f"trained model {model_path} is missing")
    import keras

    model = keras.models.load_model(model_path, compile=False)
    return {
        layer.name: keras.ops.convert_to_numpy(layer.kernel).ravel()
        for layer in model.layers
        if getattr(layer, "kernel", None) is not None
    }


def weights_figure(group: Group) -> Figure:
    """One violin per trainable conv and dense layer, labelled with the layer's real name."""
    import seaborn as sns

    run, path = group.runs[0], group.paths[0]
    kernels = kernels_of(path, run)
    rng = np.random.default_rng(0)
    names, samples = [], []
    for name, values in kernels.items():
        finite = values[np.isfinite(values)]
        if finite.size > VIOLIN_SAMPLE:
            finite = rng.choice(finite, VIOLIN_SAMPLE, replace=False)
        names.append(name)
        samples.append(finite)
    fig = Figure(figsize=(max(6, 1.3 * len(names)), 4.5))
    ax = fig.subplots()
    sns.violinplot(data=samples, ax=ax, cut=0, inner="quartile")
    ax.set_xticks(range(len(names)), names)
    ax.set(
        title=f"{group.arch_id}: trained kernel weights by layer (seed {run['config']['seed']})",
        xlabel="layer",
        ylabel="weight value",
    )
    ax.grid(True, axis="y")
    fig.tight_layout()
    return fig


def depth_figure(groups: Sequence[Group], published: dict[str, Any], budget: str) -> Figure:
    """Test accuracy against conv layers, with and without dropout; error bars over seeds."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for faithful, label_prefix, style in (
        (True, "notebook models", "o-"),
        (False, "controlled", "s:"),
    ):
        for dropout in (False, True):
            points = [
                (REGISTRY[g.arch_id].conv_layers, *_mean_sd(g.accuracies))
                for g in groups
                if g.arch_id in REGISTRY and g.accuracies
                and REGISTRY[g.arch_id].faithful == faithful
                and REGISTRY[g.arch_id].dropout == dropout
                and not REGISTRY[g.arch_id].batch_norm
            ]  # fmt: skip
            if points:
                points.sort()
                depth, mean, sd = zip(*points, strict=True)
                name = f"{label_prefix}, {'with' if dropout else 'without'} dropout"
                ax.errorbar(depth, mean, yerr=sd, fmt=style, capsize=4, label=name)
    for dropout in (False, True):
        pub = [
            (spec.conv_layers, published[arch_id]["test_accuracy"])
            for arch_id, spec in REGISTRY.items()
            if spec.faithful and spec.dropout == dropout and arch_id in published
        ]
        if pub:
            depth, acc = zip(*sorted(pub), strict=True)
            kind = "with" if dropout else "without"
            ax.plot(depth, acc, "x--", alpha=0.7, label=f"published (full budget), {kind} dropout")
    ax.set(
        title=f"Test accuracy vs depth (budget {budget}; bars: ±1 sd over seeds)",
        xlabel="number of conv layers",
        ylabel="test accuracy",
        xticks=[3, 5, 7],
    )
    ax.grid(True)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def speed_figure(groups: Sequence[Group], budget: str) -> Figure:
    """Steady-state samples/s and fraction of the device's matmul peak, per architecture."""
    names, sps, frac = [], [], []
    for group in groups:
        timings = [r["timing"] for r in group.runs if r["timing"].get("steady_samples_per_second")]
        if not timings:
            continue
        names.append(group.arch_id)
        sps.append(statistics.fmean(t["steady_samples_per_second"] for t in timings))
        frac.append(statistics.fmean(t.get("efficiency") or 0.0 for t in timings))
    if not names:
        raise ValueError("no run has a steady-state epoch (budgets of one epoch have none)")
    fig = Figure(figsize=(12, 4.5))
    ax_sps, ax_frac = fig.subplots(1, 2)
    ax_sps.bar(names, sps, color="tab:green")
    ax_sps.set(title="Training throughput (steady state)", ylabel="samples / s")
    ax_frac.bar(names, frac, color="tab:purple")
    ax_frac.set(title="Achieved training FLOP/s ÷ matmul peak", ylabel="fraction of peak")
    for ax in (ax_sps, ax_frac):
        ax.tick_params(axis="x", rotation=45)
        ax.grid(True, axis="y")
    fig.suptitle(f"Speed, budget {budget}")
    fig.tight_layout()
    return fig


def _save(fig: Figure, path: Path) -> None:
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=110)


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


def compare(groups: Sequence[Group], with_id: str, without_id: str, claim: str) -> Verdict | None:
    """Return whether `with_id` beats `without_id` on test accuracy (Welch's t-test)."""
    by_id = {g.arch_id: g for g in groups}
    if with_id not in by_id or without_id not in by_id:
        return None
    a, b = by_id[with_id].accuracies, by_id[without_id].accuracies
    depth = REGISTRY[with_id].conv_layers
    if len(a) < 2 or len(b) < 2:
        text = f"too few runs to tell ({len(a)} vs {len(b)} seeds; need 2+ each, 5+ to trust)"
        return Verdict(claim, depth, len(a), len(b), None, None, text)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        p = 0.0 if diff else 1.0
    else:
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
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
NOTEBOOK_PAIRS = (
    ("model_1_b", "model_1_a"),
    ("model_2_b", "model_2_a"),
    ("model_3_b", "model_3_a"),
)


def verdicts(groups: Sequence[Group]) -> list[Verdict]:
    """Return dropout and batch-norm verdicts per depth: controlled pairs, then notebook pairs."""
    found = []
    for depth in (3, 5, 7):
        for claim, with_v, without_v in CLAIMS:
            verdict = compare(groups, f"ctrl_{depth}_{with_v}", f"ctrl_{depth}_{without_v}", claim)
            if verdict:
                found.append(verdict)
    for with_id, without_id in (
        ("model_1_b", "model_1_a"),
        ("model_2_b", "model_2_a"),
        ("model_3_b", "model_3_a"),
    ):
        note = "dropout only" if with_id == "model_3_b" else "confounded, see below"
        claim = f"notebook: {with_id} (dropout) beats {without_id} ({note})"
        verdict = compare(groups, with_id, without_id, claim)
        if verdict:
            found.append(verdict)
    return found


GATE_TOLERANCE = Tolerance()


def precision_verdicts(groups: Sequence[Group], tolerance: Tolerance = GATE_TOLERANCE) -> list[str]:
    """Say whether each reduced-precision group keeps the accuracy of its float32 twin.

    A twin is the float32 group of the same architecture and budget. The evidence: how many
    reduced-precision runs fall inside float32's accuracy and loss bands (the gate's rule,
    `bench.gate`), and Welch's t-test on final test accuracy.
    """
    float32 = {(g.arch_id, g.budget_name): g for g in groups if g.precision == "float32"}
    lines = []
    for group in groups:
        twin = float32.get((group.arch_id, group.budget_name))
        if group.precision == "float32" or twin is None:
            continue
        a, b = group.accuracies, twin.accuracies
        if len(a) < 2 or len(b) < 2:
            lines.append(
                f"{group.arch_id}, budget {group.budget_name}: {group.precision} vs float32: too "
                f"few runs to tell ({len(a)} vs {len(b)} seeds; need 2+ each, 5+ to trust)"
            )
            continue
        mean_a, sd_a = _mean_sd(a)
        mean_b, sd_b = _mean_sd(b)
        floor = tolerance.lowest_accuracy(describe(b))
        losses_b = [r["final"]["test_loss"] for r in twin.runs if r["status"] == "completed"]
        ceiling = tolerance.highest_loss(describe(losses_b))
        losses_a = [r["final"]["test_loss"] for r in group.runs if r["status"] == "completed"]
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue) if sd_a or sd_b else 1.0
        inside = sum(value >= floor for value in a)
        loss_inside = sum(value <= ceiling for value in losses_a)
        keeps = inside == len(a) and (p >= 0.05 or mean_a >= mean_b)
        lines.append(
            f"{group.arch_id}, budget {group.budget_name}: {group.precision} "
            f"{mean_a:.4f} ± {sd_a:.4f} (n={len(a)}) vs float32 {mean_b:.4f} ± {sd_b:.4f} "
            f"(n={len(b)}): {mean_a - mean_b:+.4f}, Welch p = {p:.3g}; {inside}/{len(a)} runs "
            f"inside float32's accuracy band (>= {floor:.4f}), {loss_inside}/{len(losses_a)} "
            f"inside its loss band (<= {ceiling:.4f}): "
            + ("keeps float32's accuracy" if keeps else "DOES NOT keep float32's accuracy")
        )
    return lines


CONFOUNDS = (
    "1.1 vs 1.2 (`model_1_a` vs `model_1_b`) also changes pooling padding: the last feature map "
    "is 4x4 in 1.1 and 5x5 in 1.2, so the dense layer differs too. Not a dropout-only comparison.",
    "2.1 vs 2.2 (`model_2_a` vs `model_2_b`) are different networks: widths 128-256-512-256-128 "
    "with two pools against 32-64-128-256-512 with three. Not a dropout-only comparison.",
    "3.1 vs 3.2 (`model_3_a` vs `model_3_b`) is the only pair that differs by dropout alone.",
    "None of the six has BatchNormalization, although sections 1.1, 2.2 and 3.2 say so; the "
    "notebook cannot say anything about batch normalization. The `ctrl_*` variants can.",
    "The notebook validated on the test set and ran each model once; its differences of a few "
    "hundredths of a percent are within what another seed would change.",
    "The notebook's weight plots draw layer 3 from layer 2's weights (1.2), and layers 4-7 from "
    "layers 2-5 (2.1, 3.1, 3.2); the violins here come from each named layer's own kernel.",
)


def table(groups: Sequence[Group], published: dict[str, Any]) -> str:
    """Return the results table (Markdown), one row per architecture and budget."""
    rows = []
    for group in groups:
        accs = group.accuracies
        mean, sd = _mean_sd(accs) if accs else (math.nan, math.nan)
        pub = published.get(group.arch_id, {}).get("test_accuracy")
        timings = [r["timing"] for r in group.runs if r["timing"].get("steady_epoch_seconds")]
        epoch_s = statistics.fmean(t["steady_epoch_seconds"] for t in timings) if timings else None
        sps = statistics.fmean(t["steady_samples_per_second"] for t in timings) if timings else None
        eff = statistics.fmean(t.get("efficiency") or 0 for t in timings) if timings else None
        first = group.runs[0]
        rss = max(r["timing"].get("peak_rss_mb") or 0 for r in group.runs)
        device = max(r["timing"].get("peak_device_memory_mb") or 0 for r in group.runs)
        memory = f"{rss:,.0f} host" if rss else ""
        memory += f" / {device:,.0f} device" if device else ""
        rows.append([
            group.arch_id,
            f"{first['arch']['params']:,}",
            group.budget,
            first["config"]["budget"]["epochs"],
            f"{mean:.4f} ± {sd:.4f} (n={len(accs)})" if accs else "no completed run",
            f"{pub:.4f}" if pub is not None else "",
            f"{mean - pub:+.4f}" if pub is not None and accs else "",
            f"{epoch_s:.2f}" if epoch_s else "",
            f"{sps:,.0f}" if sps else "",
            f"{eff:.2f}" if eff else "",
            memory,
        ])  # fmt: skip
    headers = ["arch", "params", "budget", "epochs", "test accuracy (mean ± sd)", "published",
               "difference", "s / epoch", "samples / s", "fraction of peak",
               "peak memory (MiB)"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github")


def write_report(paths: Sequence[Path], out: Path, published_path: Path = PUBLISHED) -> Path:
    """Write the figures and `report.md` for the given run records; return the report path."""
    out.mkdir(parents=True, exist_ok=True)
    published = load_published(published_path)
    groups, problems = group_records(paths)
    figures: list[tuple[str, Path]] = []

    def attempt(what: str, filename: str, make: Any) -> None:
        try:
            path = out / filename
            _save(make(), path)
            figures.append((what, path))
        except Exception as error:  # one figure's failure must not cost the rest of the report
            problems.append(f"{what}: not drawn: {error}")

    for budget in sorted({g.budget for g in groups}):
        in_budget = [g for g in groups if g.budget == budget]
        attempt(
            f"accuracy vs depth ({budget})",
            f"accuracy_vs_depth_{budget}.png",
            lambda b=budget, i=in_budget: depth_figure(i, published, b),
        )
        attempt(
            f"speed ({budget})",
            f"speed_{budget}.png",
            lambda b=budget, i=in_budget: speed_figure(i, b),
        )
    for group in groups:
        name = f"{group.budget}_{group.arch_id}.png"
        attempt(
            f"curves {group.arch_id} ({group.budget})",
            f"curves_{name}",
            lambda g=group: curves_figure(g, published),
        )
        attempt(
            f"weights {group.arch_id} ({group.budget})",
            f"weights_{name}",
            lambda g=group: weights_figure(g),
        )

    lines = ["# CNN architectures on MNIST: measured against the notebook", ""]
    if not groups:
        lines += ["No valid run records were given.", ""]
    else:
        seeds = sorted({r["config"]["seed"] for g in groups for r in g.runs})
        prov = groups[0].runs[0]["provenance"]
        lines += [
            f"{sum(len(g.runs) for g in groups)} runs, seeds {seeds}, backend {prov['backend']}, "
            f"device {prov['device']['name']}, Keras {prov['versions'].get('keras')}. Published "
            "numbers are the notebook's single full-budget runs; a smaller budget is not "
            "expected to reach them.",
            "",
            "## Results",
            "",
            table(groups, published),
            "",
            "## What the evidence supports",
            "",
        ]
        lines += [
            "Welch's t-test on final test accuracy over the seeds run, per budget. These verdicts "
            "hold for the budget named: dropout and batch normalization change how fast a model "
            "learns as well as where it ends, and a short budget measures the first more than "
            "the second.",
            "",
        ]
        any_found = False
        for budget in sorted({g.budget for g in groups}):
            found = verdicts([g for g in groups if g.budget == budget])
            any_found = any_found or bool(found)
            for verdict in found:
                lines.append(
                    f"- **{verdict.claim}** at {verdict.depth} conv layers, budget {budget}: "
                    f"{verdict.text}."
                )
        if not any_found:
            lines.append("No pair of comparable runs was given; nothing can be concluded.")
        kept = precision_verdicts(groups)
        if kept:
            lines += ["", "## Reduced precision against float32", ""]
            lines += [f"- {line}." for line in kept]
        lines += ["", "## Which of the notebook's comparisons are confounded", ""]
        lines += [f"- {item}" for item in CONFOUNDS]
    lines += ["", "## Figures", ""]
    for what, path in figures:
        lines += [f"### {what}", "", f"![{what}]({path.name})", ""]
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    report = out / "report.md"
    with atomic_write(report, "w") as handle:
        handle.write("\n".join(lines))
    return report
