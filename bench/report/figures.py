"""The report's figures, drawn from grouped run records (`bench.report.groups.Group`).

matplotlib's Figure directly (no pyplot), so nothing needs a display. Each function raises
ValueError when its records lack what it needs; the report then names the missing figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from archs import REGISTRY
from bench.measurement import metrics
from bench.stats import describe
from bench.storage.atomic import atomic_write
from bench.storage.records import RunRecord

if TYPE_CHECKING:
    from bench.report.groups import Group

VIOLIN_SAMPLE = 20_000


def save(fig: Figure, path: Path) -> None:
    """Write a figure as PNG, atomically."""
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=110)


def curves(group: Group, published: dict[str, Any]) -> Figure:
    """Epoch vs loss and epoch vs accuracy, train and test, every seed; the notebook overlaid."""
    fig = Figure(figsize=(11, 4.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    seeds = ", ".join(str(run.config.seed) for run in group.runs)
    for index, run in enumerate(group.runs):
        epochs = [e.epoch for e in run.epochs]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            for prefix, key, color in (("train", metric, "tab:blue"),
                                       ("test", f"val_{metric}", "tab:orange")):  # fmt: skip
                label = f"{prefix} {metric} (seeds {seeds})" if index == 0 else None
                values = [getattr(e, key) for e in run.epochs]
                ax.plot(epochs, values, "o-", color=color, alpha=0.6, label=label)
    if group.arch_id in published:
        pub = published[group.arch_id]["epochs"]
        epochs = [e["epoch"] for e in pub]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            for prefix, key, color in (("train", metric, "tab:blue"),
                                       ("test", f"val_{metric}", "tab:orange")):  # fmt: skip
                ax.plot(epochs, [e[key] for e in pub], "--", color=color,
                        label=f"notebook {prefix} {metric} (full budget)")  # fmt: skip
    spec = REGISTRY.get(group.arch_id)
    title = group.arch_id + (f" (notebook {spec.section})" if spec and spec.faithful else "")
    ax_loss.set(title=f"{title}: loss", xlabel="epoch", ylabel="categorical cross-entropy")
    ax_acc.set(title=f"{title}: accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True)
        ax.legend(fontsize=7)
    fig.suptitle(f"{group.arch_id}, budget {group.budget}, {len(group.runs)} seed(s)")
    fig.tight_layout()
    return fig


def kernels_of(record_path: Path, record: RunRecord) -> dict[str, np.ndarray]:
    """Return {layer name: flattened kernel} from the trained model stored beside a record."""
    file = record.weights.file if record.weights else None
    if not file:
        raise ValueError("the record names no trained-model file (weights.file)")
    model_path = record_path.parent / file
    if not model_path.exists():
        raise ValueError(f"trained model {model_path} is missing")
    import keras

    model = keras.models.load_model(model_path, compile=False)
    return {
        layer.name: keras.ops.convert_to_numpy(layer.kernel).ravel()
        for layer in model.layers
        if getattr(layer, "kernel", None) is not None
    }


def weights(group: Group) -> Figure:
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
        title=f"{group.arch_id}: trained kernel weights by layer (seed {run.config.seed})",
        xlabel="layer",
        ylabel="weight value",
    )
    ax.grid(True, axis="y")
    fig.tight_layout()
    return fig


def depth(groups: Sequence[Group], published: dict[str, Any], budget: str) -> Figure:
    """Test accuracy against conv layers, with and without dropout; error bars over seeds."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for faithful, label_prefix, style in ((True, "notebook models", "o-"),
                                          (False, "controlled", "s:")):  # fmt: skip
        for dropout in (False, True):
            points = []
            for g in groups:
                spec = REGISTRY.get(g.arch_id)
                if spec and g.accuracies and spec.faithful == faithful \
                        and spec.dropout == dropout and not spec.batch_norm:  # fmt: skip
                    summary = describe(g.accuracies)
                    points.append((spec.conv_layers, summary.mean, summary.sd))
            if points:
                conv, mean, sd = zip(*sorted(points), strict=True)
                name = f"{label_prefix}, {'with' if dropout else 'without'} dropout"
                ax.errorbar(conv, mean, yerr=sd, fmt=style, capsize=4, label=name)
    for dropout in (False, True):
        pub = sorted(
            (spec.conv_layers, published[arch_id]["test_accuracy"])
            for arch_id, spec in REGISTRY.items()
            if spec.faithful and spec.dropout == dropout and arch_id in published
        )
        if pub:
            conv, acc = zip(*pub, strict=True)
            kind = "with" if dropout else "without"
            ax.plot(conv, acc, "x--", alpha=0.7, label=f"published (full budget), {kind} dropout")
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


def time_to_accuracy(group: Group, target: float | None) -> Figure:
    """Test accuracy against training seconds (evaluation off the clock), every seed; target.

    Each seed's first evaluation at or above the target is marked: its time-to-accuracy.
    """
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for run in group.runs:
        points = metrics.evaluation_points(run)
        if not points:
            continue
        seconds = [p.train_seconds for p in points]
        (line,) = ax.plot(seconds, [p.val_accuracy for p in points], "o-", alpha=0.7,
                          markersize=3, label=f"seed {run.config.seed}")  # fmt: skip
        reached = run.time_to_target
        if reached and reached.reached:
            ax.plot([reached.train_seconds], [next(p.val_accuracy for p in points
                                                   if p.position == reached.epochs)],
                    "*", markersize=12, color=line.get_color())  # fmt: skip
    if not ax.get_lines():
        raise ValueError("no run has an evaluation to draw")
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", label=f"target {target:g}")
    ax.set(title=f"{group.arch_id}, budget {group.budget}: time to accuracy (* = target reached)",
           xlabel="training seconds (evaluation excluded)", ylabel="test accuracy")  # fmt: skip
    ax.grid(True)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def speed(groups: Sequence[Group], budget: str) -> Figure:
    """Best steady-epoch samples/s and its fraction of the matmul peak, per architecture.

    Both bars come from the same (fastest steady) epoch of each run, averaged over seeds;
    runs without a steady epoch or a peak are left out, never counted as zero.
    """
    names, sps, frac = [], [], []
    for group in groups:
        derived = [metrics.of(run) for run in group.runs]
        fast = [d.best_samples_per_second for d in derived if d.best_samples_per_second]
        eff = [d.efficiency for d in derived if d.efficiency]
        if fast and eff:
            names.append(group.arch_id)
            sps.append(statistics.fmean(fast))
            frac.append(statistics.fmean(eff))
    if not names:
        raise ValueError("no run has a steady-state epoch (budgets of one epoch have none)")
    fig = Figure(figsize=(12, 4.5))
    ax_sps, ax_frac = fig.subplots(1, 2)
    ax_sps.bar(names, sps, color="tab:green")
    ax_sps.set(title="Training throughput (fastest steady epoch)", ylabel="samples / s")
    ax_frac.bar(names, frac, color="tab:purple")
    ax_frac.set(title="Achieved training FLOP/s ÷ matmul peak", ylabel="fraction of peak")
    for ax in (ax_sps, ax_frac):
        ax.tick_params(axis="x", rotation=45)
        ax.grid(True, axis="y")
    fig.suptitle(f"Speed, budget {budget}")
    fig.tight_layout()
    return fig
