"""The report: figure content (axes, labels, curves, violins, overlays), verdicts, resilience."""

import dataclasses
import json

import pytest
from matplotlib.collections import PolyCollection
from records_factory import make_record

from archs import REGISTRY
from bench.report import document as report
from bench.report import figures
from bench.report.groups import Group
from bench.storage import records

PUBLISHED = report.load_published()


def group_of(arch_id, accs, **kwargs):
    runs = [make_record(arch_id, seed=i, acc=a, **kwargs) for i, a in enumerate(accs)]
    return Group(arch_id, "ci", runs, [])


def labels(ax):
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_curves_show_train_and_test_per_seed_with_the_published_overlay():
    fig = figures.curves(group_of("model_1_b", [0.9, 0.91]), PUBLISHED)
    ax_loss, ax_acc = fig.axes
    assert ax_loss.get_title() == "model_1_b (notebook 1.2): loss"
    assert ax_acc.get_title() == "model_1_b (notebook 1.2): accuracy"
    assert ax_loss.get_xlabel() == ax_acc.get_xlabel() == "epoch"
    assert ax_acc.get_ylabel() == "accuracy"
    assert (
        len(ax_acc.get_lines()) == 2 * 2 + 2
    )  # two seeds x (train, test) + notebook (train, test)
    assert labels(ax_acc) == [
        "train accuracy (seeds 0, 1)",
        "test accuracy (seeds 0, 1)",
        "notebook train accuracy (full budget)",
        "notebook test accuracy (full budget)",
    ]
    notebook_test = ax_acc.get_lines()[-1]
    assert list(notebook_test.get_xdata()) == list(range(1, 16))
    assert notebook_test.get_ydata()[-1] == pytest.approx(0.9940)


def test_controlled_variant_curves_have_no_overlay():
    fig = figures.curves(group_of("ctrl_3_bn", [0.9]), PUBLISHED)
    assert all("notebook" not in label for label in labels(fig.axes[1]))


def test_weight_violins_one_per_layer_with_real_names(tmp_path):
    model = REGISTRY["model_3_a"].build()
    model.save(tmp_path / "model.keras")
    record = make_record("model_3_a", model_file="model.keras")
    group = Group("model_3_a", "ci", [record], [tmp_path / "record.json"])
    ax = figures.weights(group).axes[0]
    names = [tick.get_text() for tick in ax.get_xticklabels()]
    assert names == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "predictions"]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 8
    assert ax.get_xlabel() == "layer" and ax.get_ylabel() == "weight value"


def test_accuracy_vs_depth_has_error_bars_and_published_points():
    groups = [
        group_of(arch_id, [0.90 + 0.01 * i, 0.92 + 0.01 * i])
        for i, arch_id in enumerate(
            ["model_1_a", "model_1_b", "model_2_a", "model_2_b", "model_3_a", "model_3_b"]
        )
    ]
    ax = figures.depth(groups, PUBLISHED, "ci").axes[0]
    assert ax.get_xlabel() == "number of conv layers" and ax.get_ylabel() == "test accuracy"
    legend = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert legend == sorted(
        [
            "notebook models, without dropout",
            "notebook models, with dropout",
            "published (full budget), without dropout",
            "published (full budget), with dropout",
        ]
    )
    assert len(ax.containers) == 2  # one errorbar container per measured series
    without = ax.containers[0].lines[0]
    assert list(without.get_xdata()) == [3, 5, 7]
    assert list(without.get_ydata()) == pytest.approx([0.91, 0.93, 0.95])


def test_speed_figure_has_one_bar_per_architecture():
    groups = [group_of(a, [0.9]) for a in ("model_1_a", "model_2_a", "model_3_a")]
    ax_sps, ax_frac = figures.speed(groups, "ci").axes
    assert len(ax_sps.patches) == len(ax_frac.patches) == 3
    assert ax_sps.get_ylabel() == "samples / s" and ax_frac.get_ylabel() == "fraction of peak"
    assert [t.get_text() for t in ax_sps.get_xticklabels()] == [
        "model_1_a",
        "model_2_a",
        "model_3_a",
    ]


def test_verdicts_need_seeds_and_say_so():
    clear = [group_of("ctrl_3_plain", [0.90, 0.901, 0.899, 0.90, 0.902]),
             group_of("ctrl_3_dropout", [0.95, 0.951, 0.949, 0.952, 0.95])]  # fmt: skip
    (verdict,) = report.verdicts(clear)
    assert verdict.claim == "dropout helps" and verdict.depth == 3
    assert verdict.text.startswith("supported: +0.0500")
    noisy = [
        group_of("ctrl_5_bn", [0.90, 0.95, 0.92]),
        group_of("ctrl_5_plain", [0.93, 0.91, 0.92]),
    ]
    (verdict,) = report.verdicts(noisy)
    assert verdict.text.startswith("not supported")
    few = [group_of("model_3_a", [0.9]), group_of("model_3_b", [0.95])]
    (verdict,) = report.verdicts(few)
    assert "too few runs to tell (1 vs 1 seeds" in verdict.text


def test_report_survives_a_record_missing_what_a_figure_needs(tmp_path):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"run{seed}" / "record.json"
        path.parent.mkdir()
        records.save(make_record("model_1_a", seed=seed, model_file="model.keras"), path)
        paths.append(path)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"schema": "nope"}))
    out = tmp_path / "report"
    text = report.write_report([*paths, broken], out).read_text()
    assert "| model_1_a |" in text and "0.9907" in text and "0.9500 ± 0.0000 (n=2)" in text
    assert "weights model_1_a (ci): not drawn: trained model" in text
    assert f"skipped {broken}" in text
    assert "1.1 vs 1.2" in text and "BatchNormalization" in text
    assert (out / "curves_ci_model_1_a.png").stat().st_size > 0
    assert (out / "accuracy_vs_depth_ci.png").exists() and (out / "speed_ci.png").exists()
    assert not (out / "weights_ci_model_1_a.png").exists()


def test_report_of_nothing_says_so(tmp_path):
    text = report.write_report([], tmp_path).read_text()
    assert "No valid run records were given." in text


def test_speed_figure_without_steady_epochs_is_a_clear_problem(tmp_path):
    path = tmp_path / "r" / "record.json"
    records.save(make_record(epochs=1), path)
    text = report.write_report([path], tmp_path / "out").read_text()
    assert "speed (ci): not drawn: no run has a steady-state epoch" in text


def test_runs_in_other_precisions_are_never_pooled_and_memory_is_shown(tmp_path):
    paths = []
    for seed, precision in ((0, "float32"), (1, "float32"), (0, "mixed_bfloat16")):
        record = make_record("model_1_a", seed=seed, precision=precision,
                             acc=0.95 if precision == "float32" else 0.9)  # fmt: skip
        device = 700.0 if precision != "float32" else None
        timing = dataclasses.replace(record.timing, peak_rss_mb=1536.0 + seed,
                                     peak_device_memory_mb=device)  # fmt: skip
        path = tmp_path / precision / f"seed{seed}" / "record.json"
        records.save(dataclasses.replace(record, timing=timing), path)
        paths.append(path)
    groups, problems = report.group_records(paths)
    assert not problems
    assert [(g.arch_id, g.budget, len(g.runs)) for g in groups] == [
        ("model_1_a", "ci", 2),
        ("model_1_a", "ci-mixed_bfloat16", 1),
    ]
    text = report.table(groups, {})
    fp32_row, bf16_row = text.splitlines()[2:]
    assert "| ci " in fp32_row and "0.9500 ± 0.0000 (n=2)" in fp32_row
    assert "| ci-mixed_bfloat16 " in bf16_row and "0.9000 ± 0.0000 (n=1)" in bf16_row
    assert "1,537 host " in fp32_row and "device" not in fp32_row
    assert "1,536 host / 700 device" in bf16_row


def precision_group(accs, losses, precision):
    runs = [make_record("model_1_a", seed=seed, acc=acc, loss=loss, precision=precision)
            for seed, (acc, loss) in enumerate(zip(accs, losses, strict=True))]  # fmt: skip
    label = "ci" if precision == "float32" else f"ci-{precision}"
    return Group("model_1_a", label, runs, [], precision, "ci")


def test_reduced_precision_is_judged_against_its_float32_twin_by_the_gate_band():
    fp32 = precision_group([0.930, 0.935, 0.925, 0.932], [0.20, 0.21, 0.22, 0.20], "float32")
    same = precision_group([0.931, 0.929, 0.934, 0.927], [0.21, 0.20, 0.22, 0.21], "mixed_bfloat16")
    (line,) = report.precision_verdicts([fp32, same])
    assert line.startswith("model_1_a, budget ci: mixed_bfloat16 0.9303 ± 0.0030 (n=4)")
    assert "4/4 runs inside float32's accuracy band (>= 0.9179)" in line
    assert "4/4 inside its loss band" in line and line.endswith("keeps float32's accuracy")
    worse = precision_group([0.90, 0.91, 0.905, 0.93], [0.3, 0.3, 0.3, 0.2], "mixed_float16")
    (line,) = report.precision_verdicts([fp32, worse])
    assert "1/4 runs inside float32's accuracy band" in line
    assert "1/4 inside its loss band" in line
    assert line.endswith("DOES NOT keep float32's accuracy")
    assert report.precision_verdicts([same]) == []  # no float32 twin, no verdict


def test_time_to_accuracy_has_every_seed_the_target_line_and_where_each_reached_it():
    runs = [make_record(seed=s, epochs=3, target=0.85, val_accuracies=v)
            for s, v in enumerate(([0.5, 0.9, 0.95], [0.6, 0.7, 0.86]))]  # fmt: skip
    ax = figures.time_to_accuracy(Group("model_1_a", "ci", runs), 0.85).axes[0]
    assert ax.get_xlabel() == "training seconds (evaluation excluded)"
    assert ax.get_ylabel() == "test accuracy"
    assert labels(ax) == ["seed 0", "seed 1", "target 0.85"]
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert [list(s.get_xdata()) for s in stars] == [[4.0], [5.0]]  # 3 s + 1 s; 3 s + 1 s + 1 s
    seed0 = ax.get_lines()[0]
    assert list(seed0.get_xdata()) == [3.0, 4.0, 5.0] and list(seed0.get_ydata()) == [
        0.5,
        0.9,
        0.95,
    ]
    row = report.table([Group("model_1_a", "ci", runs)], {}).splitlines()[2]
    assert "2/2 ≥ 0.85: 2.5 epochs, 4.5 s" in row


def test_a_report_from_only_unreadable_records_exits_2_saying_so(tmp_path, capsys):
    from bench.cli.commands import main as cli_main

    broken = tmp_path / "record.json"
    broken.write_text("{ not a record")
    status = cli_main(["report", str(broken), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert status == 2 and "none of the 1 record(s) could be read" in err and str(broken) in err
