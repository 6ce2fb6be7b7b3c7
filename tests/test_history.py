"""The history across commits: reading saved runs, change points, comparisons, the figure."""

import json

import pytest

from bench.report import history


def save_run(folder, index, commit, train_seconds, accuracy=0.93, **extra):
    """Write one pytest-benchmark saved run (its real shape, trimmed) for one commit."""
    benchmarks = [
        {"name": f"test_train[model_1_a-seed{seed}]", "group": "train-ci", "stats": {},
         "extra_info": {"arch": "model_1_a", "seed": seed, "test_accuracy": accuracy,
                        "train_seconds_total": seconds, "eval_seconds_total": 0.7,
                        "efficiency": 2.0 / seconds, "seconds_to_target": seconds / 2,
                        "plant": "none", **extra}}
        for seed, seconds in enumerate(train_seconds)
    ]  # fmt: skip
    document = {
        "machine_info": {}, "version": "5.3.1", "datetime": f"2026-11-{index:02d}T10:00:00",
        "commit_info": {"id": commit * 40, "time": f"2026-11-{index:02d}T09:00:00+00:00",
                        "dirty": False, "branch": "main"},
        "benchmarks": benchmarks,
    }  # fmt: skip
    path = folder / "Linux-CPython-3.11-64bit" / f"{index:04d}_{commit}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


HONEST = ([4.0, 4.1, 3.9], [4.2, 4.0, 3.8], [3.9, 4.0, 4.1], [4.0, 3.8, 4.2], [4.1, 3.9, 4.0],
          [4.0, 4.1, 3.9])  # fmt: skip


def save_honest(folder):
    for index, (commit, values) in enumerate(zip("abcdef", HONEST, strict=True), 1):
        save_run(folder, index, commit, values)


@pytest.fixture
def store(tmp_path):
    save_honest(tmp_path)
    for index, commit in enumerate("ghi", 7):  # training 30% slower from commit g
        save_run(tmp_path, index, commit, [5.2, 5.3, 5.1])
    return tmp_path


def test_a_planted_slowdown_is_the_only_change_point_and_a_regression(store):
    commits, problems = history.load([store])
    assert [c.id[0] for c in commits] == list("abcdefghi") and problems == []
    points = history.change_points(commits)
    assert {(p.metric, p.commit[0]) for p in points} == {
        ("train_seconds_total", "g"), ("efficiency", "g"), ("seconds_to_target", "g")}  # fmt: skip
    training = next(p for p in points if p.metric == "train_seconds_total")
    assert training.relative == pytest.approx(0.30, abs=0.01) and training.p_value < 0.001
    assert {p.kind for p in points} == {"regression"}


def test_a_speed_up_is_a_change_point_named_an_improvement(tmp_path):
    save_honest(tmp_path)
    for index, commit in enumerate("ghi", 7):
        save_run(tmp_path, index, commit, [3.0, 3.1, 2.9])
    points = history.change_points(history.load([tmp_path])[0])
    training = next(p for p in points if p.metric == "train_seconds_total")
    assert training.commit[0] == "g" and training.kind == "improvement"
    assert next(p for p in points if p.metric == "efficiency").kind == "improvement"


def test_one_seed_a_commit_is_enough_to_find_a_step(tmp_path):
    for index in range(1, 13):
        save_run(tmp_path, index, "abcdefghijkl"[index - 1],
                 [(4.0 if index < 7 else 4.8) + 0.05 * (-1) ** index])  # fmt: skip
    points = history.change_points(history.load([tmp_path])[0])
    assert ("train_seconds_total", "g") in {(p.metric, p.commit[0]) for p in points}


def test_honest_commits_alone_have_no_change_point(tmp_path):
    save_honest(tmp_path)
    assert history.change_points(history.load([tmp_path])[0]) == []


def test_a_significant_change_smaller_than_the_metrics_least_is_not_a_change_point(tmp_path):
    save_honest(tmp_path)
    for index, commit in enumerate("ghi", 7):  # 2% slower: consistent, but under MIN_CHANGE
        save_run(tmp_path, index, commit, [4.08, 4.09, 4.07])
    points = history.change_points(history.load([tmp_path])[0])
    assert [p for p in points if p.metric == "train_seconds_total"] == []


def test_latest_is_compared_with_the_previous_the_best_or_a_named_commit(store):
    commits, _ = history.load([store])
    previous = history.compare(commits, "previous")
    assert "hhhhhhh" in previous and "latest (iiiiiii)" in previous
    best = history.compare(commits, "best")
    assert "efficiency" in best and "-2" in best  # about -23% against the best commit
    named = history.compare(commits, "ccc")
    assert "ccccccc" in named
    assert "matched no earlier commit" in history.compare(commits, "zzz")


def test_older_and_foreign_files_are_said_and_planted_runs_left_out(tmp_path):
    old = save_run(tmp_path, 1, "a", [4.0, 4.0])
    document = json.loads(old.read_text())
    for bench in document["benchmarks"]:
        del bench["extra_info"]["seconds_to_target"]  # before record version 3
    old.write_text(json.dumps(document))
    save_run(tmp_path, 2, "b", [9.0, 9.0], plant="slow-step")
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
    accuracy, training, *_, efficiency = fig.axes
    ticks = [t.get_text() for t in efficiency.get_xticklabels()]
    assert ticks[0] == "aaaaaaa\n2026-11-01" and ticks[-1] == "iiiiiii\n2026-11-09"
    legend = [t.get_text() for t in training.get_legend().get_texts()]
    assert any(label.startswith("regression ggggggg: +3") for label in legend)
    assert accuracy.get_legend() is not None and "regression" not in " ".join(
        t.get_text() for t in accuracy.get_legend().get_texts())  # fmt: skip


def test_without_otava_the_trend_is_drawn_and_the_missing_detector_said(store, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_otava(name, *args, **kwargs):
        if name.startswith("otava"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otava)
    assert "pip install --no-deps apache-otava==" in history.available()
    from bench.cli.commands import main

    assert main(["history", str(store), "--out", str(store / "out")]) == 0
    assert (store / "out" / "history_model_1_a.png").is_file()


@pytest.mark.parametrize(
    "edit",
    [lambda d: d.update(commit_info=[]), lambda d: d["commit_info"].update(id=12345),
     lambda d: [b["extra_info"].update(arch=["model_1_a"]) for b in d["benchmarks"]],
     lambda d: d.update(benchmarks="none")],
)  # fmt: skip
def test_a_crafted_saved_run_is_a_problem_named_by_its_file_not_a_traceback(tmp_path, edit):
    save_run(tmp_path, 1, "a", [4.0, 4.1])
    path = save_run(tmp_path, 2, "b", [4.0, 4.1])
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    commits, problems = history.load([tmp_path])
    assert [c.id[0] for c in commits] == ["a"] and str(path) in " ".join(problems)


def test_a_reference_commit_whose_mean_is_zero_compares_without_dividing_by_it(tmp_path):
    save_run(tmp_path, 1, "a", [4.0, 4.1], accuracy=0.0)
    save_run(tmp_path, 2, "b", [4.0, 4.1], accuracy=0.9)
    commits, _ = history.load([tmp_path])
    table = history.compare(commits)
    assert "+0.9000 (from 0)" in table
