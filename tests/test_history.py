"""The history across commits: reading saved runs, change points, comparisons, the figure."""

import json

import pytest

from bench.report import history


def save_run(folder, index, commit, efficiencies, accuracy=0.93, seconds=2.0, **extra):
    """Write one pytest-benchmark saved run (its real shape, trimmed) for one commit."""
    benchmarks = [
        {"name": f"test_train[model_1_a-seed{seed}]", "group": "train-ci", "stats": {},
         "extra_info": {"arch": "model_1_a", "seed": seed, "test_accuracy": accuracy,
                        "efficiency": efficiency, "seconds_to_target": seconds * 0.5 / efficiency,
                        "plant": "none", **extra}}
        for seed, efficiency in enumerate(efficiencies)
    ]  # fmt: skip
    document = {
        "machine_info": {}, "version": "5.3.1", "datetime": f"2026-11-2{index}T10:00:00",
        "commit_info": {"id": commit * 40, "time": f"2026-11-2{index}T09:00:00+00:00",
                        "dirty": False, "branch": "main"},
        "benchmarks": benchmarks,
    }  # fmt: skip
    path = folder / "Linux-CPython-3.11-64bit" / f"000{index}_{commit}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


HONEST = ([0.50, 0.49, 0.51], [0.48, 0.50, 0.52], [0.51, 0.50, 0.49], [0.50, 0.52, 0.48])


@pytest.fixture
def store(tmp_path):
    for index, (commit, values) in enumerate(zip("abcd", HONEST, strict=True), 1):
        save_run(tmp_path, index, commit, values)
    save_run(tmp_path, 5, "e", [0.38, 0.37, 0.39])  # a 25% slower step
    save_run(tmp_path, 6, "f", [0.37, 0.39, 0.38])
    return tmp_path


def test_a_planted_slowdown_is_the_only_change_point(store):
    commits, problems = history.load([store])
    assert [c.id[0] for c in commits] == list("abcdef") and problems == []
    points = history.change_points(commits)
    assert {(p.metric, p.commit[0]) for p in points} == {
        ("efficiency", "e"), ("seconds_to_target", "e")}  # fmt: skip
    efficiency = next(p for p in points if p.metric == "efficiency")
    assert efficiency.relative == pytest.approx(-0.24, abs=0.01) and efficiency.p_value < 0.01


def test_honest_commits_alone_have_no_change_point(tmp_path):
    for index, (commit, values) in enumerate(zip("abcd", HONEST, strict=True), 1):
        save_run(tmp_path, index, commit, values)
    assert history.change_points(history.load([tmp_path])[0]) == []


def test_latest_is_compared_with_the_previous_the_best_or_a_named_commit(store):
    commits, _ = history.load([store])
    previous = history.compare(commits, "previous")
    assert "eeeee" in previous.splitlines()[2] or "eeeee" in previous
    best = history.compare(commits, "best")
    assert "efficiency" in best and "-2" in best  # about -24% against the best commit
    named = history.compare(commits, "ccc")
    assert "ccccccc" in named
    assert "matched no earlier commit" in history.compare(commits, "zzz")


def test_older_and_foreign_files_are_said_and_planted_runs_left_out(tmp_path):
    old = save_run(tmp_path, 1, "a", [0.5, 0.5])
    document = json.loads(old.read_text())
    for bench in document["benchmarks"]:
        del bench["extra_info"]["seconds_to_target"]  # before record version 3
    old.write_text(json.dumps(document))
    save_run(tmp_path, 2, "b", [0.1, 0.1], plant="slow-step")
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"benchmarks": [], "commit_info": {"id": "x"}}))
    (tmp_path / "broken.json").write_text("{")
    commits, problems = history.load([tmp_path])
    assert [c.id[0] for c in commits] == ["a"]
    text = "\n".join(problems)
    assert "without ['seconds_to_target']" in text
    assert "2 run(s) with a planted regression, left out" in text
    assert "other.json: no cnnbench results" in text
    assert "broken.json: not a pytest-benchmark result" in text


def test_the_figure_labels_commits_in_order_and_marks_the_change_point(store):
    commits, _ = history.load([store])
    fig = history.figure(commits, "model_1_a", history.change_points(commits))
    accuracy, _, efficiency = fig.axes
    ticks = [t.get_text() for t in efficiency.get_xticklabels()]
    assert ticks[0] == "aaaaaaa\n2026-11-21" and ticks[-1] == "fffffff\n2026-11-26"
    legend = [t.get_text() for t in efficiency.get_legend().get_texts()]
    assert any(label.startswith("change point eeeeeee: -2") for label in legend)
    assert accuracy.get_legend() is not None and "change point" not in " ".join(
        t.get_text() for t in accuracy.get_legend().get_texts())  # fmt: skip


def test_a_step_seen_only_a_commit_later_is_placed_where_it_happened(tmp_path):
    for index, (commit, values) in enumerate(zip("abcd", HONEST, strict=True), 1):
        save_run(tmp_path, index, commit, values)
    save_run(tmp_path, 5, "e", [0.40, 0.46, 0.35])  # slower, but too spread to tell alone
    commits, _ = history.load([tmp_path])
    assert [p for p in history.change_points(commits) if p.metric == "efficiency"] == []
    save_run(tmp_path, 6, "f", [0.40, 0.41, 0.39])
    (point,) = [p for p in history.change_points(history.load([tmp_path])[0])
                if p.metric == "efficiency"]  # fmt: skip
    assert point.commit[0] == "e"


@pytest.mark.parametrize(
    "edit",
    [lambda d: d.update(commit_info=[]), lambda d: d["commit_info"].update(id=12345),
     lambda d: [b["extra_info"].update(arch=["model_1_a"]) for b in d["benchmarks"]],
     lambda d: d.update(benchmarks="none")],
)  # fmt: skip
def test_a_crafted_saved_run_is_a_problem_named_by_its_file_not_a_traceback(tmp_path, edit):
    save_run(tmp_path, 1, "a", [0.4, 0.41])
    path = save_run(tmp_path, 2, "b", [0.4, 0.41])
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    commits, problems = history.load([tmp_path])
    assert [c.id[0] for c in commits] == ["a"] and str(path) in " ".join(problems)


def test_a_reference_commit_whose_mean_is_zero_compares_without_dividing_by_it(tmp_path):
    save_run(tmp_path, 1, "a", [0.4, 0.41], accuracy=0.0)
    save_run(tmp_path, 2, "b", [0.4, 0.41], accuracy=0.9)
    commits, _ = history.load([tmp_path])
    table = history.compare(commits)
    assert "+0.9000 (from 0)" in table
