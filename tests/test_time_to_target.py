"""Time-to-accuracy: targets per budget, when a run first reaches its target, and the gate."""

import dataclasses

import pytest
from records_factory import make_record

from bench.gate import Gate
from bench.measurement import aggregate, metrics
from bench.storage import baselines, targets
from bench.storage.records import Evaluation


def test_every_named_budget_has_a_target_and_overrides_use_their_base():
    from bench.budgets import BUDGETS

    stored = targets.load()
    for name in BUDGETS:
        assert 0 < stored.for_budget(name).test_accuracy < 1 and stored.for_budget(name).why
    assert stored.for_budget("ci-epochs1") == stored.for_budget("ci")
    assert stored.for_budget("peer") is None


def test_the_ci_target_is_reached_by_every_seed_of_the_stored_ci_baselines():
    from bench.storage import layout

    target = targets.load().for_budget("ci").test_accuracy
    for path in layout.default_baselines().glob("ci/*.json"):
        for arch_id, entry in baselines.load(path).archs.items():
            assert entry.test_accuracy.min >= target, (path.name, arch_id)


def test_time_to_target_is_the_first_evaluation_at_or_above_it_with_both_clocks():
    record = make_record(epochs=3, val_accuracies=[0.5, 0.9, 0.95], target=0.85)
    reached = record.time_to_target
    assert reached.reached and reached.epochs == 2.0
    assert reached.train_seconds == pytest.approx(3.0 + 1.0)  # compiling epoch + one more
    assert reached.train_and_eval_seconds == pytest.approx(4.0 + 0.2)
    late = make_record(epochs=3, val_accuracies=[0.5, 0.6, 0.7], target=0.85).time_to_target
    assert not late.reached and late.epochs is None and late.train_seconds is None
    derived = metrics.of(record)
    assert (derived.epochs_to_target, derived.seconds_to_target) == (2.0, pytest.approx(4.0))


def test_evaluations_inside_epochs_make_the_time_finer_than_an_epoch():
    record = make_record(epochs=3, val_accuracies=[0.5, 0.9, 0.95])
    inside = Evaluation(position=1.5, train_seconds=3.5, seconds=0.05, val_loss=0.3,
                        val_accuracy=0.86)  # fmt: skip
    record = dataclasses.replace(record, evaluations=(inside,))
    reached = metrics.time_to_target(record, 0.85)
    assert reached.epochs == 1.5 and reached.train_seconds == 3.5
    assert reached.train_and_eval_seconds == pytest.approx(3.5 + 0.1 + 0.05)
    points = metrics.evaluation_points(record)
    assert [p.position for p in points] == [1.0, 1.5, 2.0, 3.0]


def _baseline(tmp_path, reach_epochs):
    runs = [
        make_record(seed=s, epochs=3, target=0.85,
                    val_accuracies=[0.9 if e >= at else 0.5 for e in (1, 2, 3)])
        for s, at in enumerate(reach_epochs)
    ]  # fmt: skip
    aggregate.regenerate(runs, tmp_path)
    return Gate(tmp_path, "accuracy")


def test_the_gate_fails_a_run_that_reaches_its_target_later_than_the_band(tmp_path):
    gate = _baseline(tmp_path, reach_epochs=(1, 1, 2))
    entry = baselines.load(next(tmp_path.rglob("*.json"))).archs["model_1_a"]
    assert entry.epochs_to_target.max == 2.0
    on_time = make_record(seed=9, epochs=3, target=0.85, val_accuracies=[0.5, 0.5, 0.9])
    checks = {c.metric: c for c in gate.check(on_time)}
    assert checks["epochs_to_target"].passed and checks["epochs_to_target"].bound == 3.0
    never = make_record(seed=9, epochs=3, target=0.85, val_accuracies=[0.5, 0.6, 0.7])
    failed = {c.metric: c for c in gate.check(never)}["epochs_to_target"]
    assert not failed.passed and "epochs_to_target = missing" in failed.message()


def test_no_time_to_target_check_when_a_baseline_seed_never_reached_it(tmp_path):
    gate = _baseline(tmp_path, reach_epochs=(1, 4))  # seed 1 never reaches it
    assert [c.metric for c in gate.check(make_record(seed=9, target=0.85))] == [
        "test_accuracy", "test_loss"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.real_data
def test_an_evaluation_interval_leaves_training_unchanged_and_records_finer_times(tmp_path):
    from bench.training.trainer import train_run

    plain = train_run("model_1_a", "smoke", 0, write=lambda line: None)
    fine = train_run("model_1_a", "smoke", 0, eval_every=2, write=lambda line: None)
    assert [e.val_accuracy for e in fine.epochs] == [e.val_accuracy for e in plain.epochs]
    assert fine.final == plain.final
    assert [e.position for e in fine.evaluations] == [0.5, 1.5]  # 4 steps per epoch
    assert plain.time_to_target.target == fine.time_to_target.target == 0.5
    for record in (plain, fine):
        reached = record.time_to_target
        first = next((p for p in metrics.evaluation_points(record) if p.val_accuracy >= 0.5), None)
        assert reached.reached == (first is not None)
        if first:
            assert reached.epochs == first.position


def test_a_record_without_time_to_target_fails_like_one_that_never_reached_it(tmp_path):
    gate = _baseline(tmp_path, reach_epochs=(1, 1, 2))
    unmeasured = make_record(seed=9, epochs=3)  # time_to_target: null
    assert unmeasured.time_to_target is None
    failed = {c.metric: c for c in gate.check(unmeasured)}["epochs_to_target"]
    assert not failed.passed and "epochs_to_target = missing" in failed.message()
