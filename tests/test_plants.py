"""Planted slowdowns: each lands where it says, the training clock sees all of it, and none
changes what the model learns. Planted changes of numerics: each changes it, as it says."""

import numpy as np
import pytest

from bench.budgets import LEARNING_RATE, Budget
from bench.training import plants
from bench.training.trainer import Trainer, default_data

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

BUDGET = Budget("plants", epochs=2, train_samples=1024, test_samples=512, description="t")
"""8 steps an epoch: the stall lands before the fifth."""


def quiet(line):
    pass


def train(plant):
    options = plants.trainer_options(plant, default_data())
    with Trainer("model_1_a", BUDGET, 0, write=quiet, **options) as trainer:
        record = trainer.run_to_end()
    planted = (options.get("callbacks") or options.get("eval_callbacks") or [None])[0]
    return record, trainer.clock, planted


@pytest.fixture(scope="module")
def honest():
    return train("none")[0]


def history(record):
    return [(e.loss, e.accuracy, e.val_loss, e.val_accuracy) for e in record.epochs]


@pytest.mark.parametrize("plant", ["slow-step:0.5", "between-steps:0.5", "stall:0.5"])
def test_a_training_plant_is_on_the_clock_and_changes_no_number(plant, honest):
    record, clock, planted = train(plant)
    assert history(record) == history(honest) and record.final == honest.final
    steps_per_epoch = len(clock.epochs[0].wall)
    per_epoch = len(planted.slept) // len(clock.epochs)
    assert planted.slept and sum(planted.slept) > 0
    for k, epoch in enumerate(clock.epochs):  # every second slept is on the epoch's clock
        slept = planted.slept[k * per_epoch : (k + 1) * per_epoch]
        assert epoch.seconds >= sum(slept) and sum(epoch.wall) >= sum(slept)
        assert record.epochs[k].train_seconds == epoch.seconds
    if plant.startswith("stall"):  # once per epoch, in the step before the middle one's end
        assert len(planted.slept) == len(clock.epochs)
        for epoch, slept in zip(clock.epochs, planted.slept, strict=True):
            assert epoch.wall[steps_per_epoch // 2] >= slept


def test_a_slower_evaluation_is_on_the_evaluation_clock_only(honest):
    record, clock, planted = train("slow-eval:0.5")
    assert history(record) == history(honest) and record.final == honest.final
    assert len(planted.slept) == len(clock.evaluations) == len(record.epochs) + 1  # and final
    for seconds, slept in zip(clock.evaluations, planted.slept, strict=True):
        assert seconds >= slept
    assert [e.eval_seconds for e in record.epochs] == clock.evaluations[: len(record.epochs)]


@pytest.mark.parametrize("name", ["slow-step:0", "stall:11", "between-steps:inf",
                                  "slow-eval:nan", "stall:x", "lr0:0.1", "fast-step",
                                  "slow-step:0.1_0", "lr-scale:\u0661", "wrong-labels:1.5",
                                  "jitter:0.5", "lr-scale:-0.8", "wrong-labels:",
                                  "data-order:1.5", "data-order:0"])  # fmt: skip
def test_a_plant_out_of_bounds_is_refused_saying_the_bounds(name):
    with pytest.raises(ValueError, match=r"unknown plant .*\(0, 10\]"):
        plants.check(name)


def test_numeric_plants_are_sized_and_said_to_change_numbers():
    assert plants.fraction_of("lr-scale:0.72") == 0.72 and plants.fraction_of("jitter") == 1e-4
    assert plants.is_numeric("wrong-labels:0.03") and plants.is_numeric("lr0")
    assert not plants.is_numeric("slow-step:0.1") and not plants.is_numeric("none")
    assert plants.trainer_options("lr-scale:0.5", "d")["learning_rate"] == LEARNING_RATE / 2


def test_wrong_labels_are_wrong_fixed_and_sized():
    x = np.zeros((1000, 28, 28), np.uint8)
    y = np.arange(1000) % 10
    test = (x[:10], y[:10])
    (x2, labels), kept = plants.wrong_labels(((x, y), test), 0.05)
    changed = labels != y
    assert changed.sum() == 50 and kept is test and x2 is x  # 5%, every one another class
    assert ((labels >= 0) & (labels < 10)).all()
    again = plants.wrong_labels(((x, y), test), 0.05)[0][1]
    assert (again == labels).all()  # the same images and labels every run
    assert (y == np.arange(1000) % 10).all()  # the given arrays untouched


@pytest.mark.parametrize(
    "plant", ["jitter:0.0001", "lr-scale:0.8", "wrong-labels:0.1", "data-order:1"]
)
def test_a_numeric_plant_changes_the_history_and_says_so(plant, honest):
    record, _, _ = train(plant)
    assert record.config.plant == plant and record.status == "completed"
    assert history(record)[0] != history(honest)[0]  # from the first epoch on
    if plant.startswith(("jitter", "data-order")):  # the recipe is the honest one's
        assert record.config.learning_rate == honest.config.learning_rate
        assert abs(record.final.test_accuracy - honest.final.test_accuracy) < 0.1
