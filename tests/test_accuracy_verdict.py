"""The comparison's accuracy verdict (`bench.compare.accuracy`): its interval, its rule, and
what it says when it cannot tell. Synthetic runs: the power on real ones is measured
(docs/comparison.md, `bench.investigations.accuracy_power`)."""

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.compare import accuracy


def runs(accuracies, loss=0.2):
    return [[loss, a] for a in accuracies]


BASE = [0.950, 0.948, 0.953, 0.947, 0.951]


def test_a_one_point_drop_through_seed_noise_is_worse():
    head = [a - 0.01 + n for a, n in zip(BASE, (0.001, -0.002, 0.0015, 0.0, -0.001), strict=True)]
    judged = accuracy.judge(runs(BASE), runs(head), seeds=range(5))
    assert judged.accuracy.verdict == "worse" and judged.status == "regression"
    assert judged.accuracy.estimate == pytest.approx(0.01 - statistics.fmean(
        (0.001, -0.002, 0.0015, 0.0, -0.001)))  # fmt: skip
    assert judged.accuracy.describe().startswith("-1.01 points [")
    assert judged.failed == ["test accuracy"] and judged.loss.verdict == "ok"


def test_a_rise_of_loss_alone_fails_and_reads_as_a_percentage():
    base = [[0.20, a] for a in BASE]
    head = [[0.20 * f, a] for f, a in zip((1.25, 1.22, 1.3, 1.27, 1.24), BASE, strict=True)]
    judged = accuracy.judge(base, head)
    assert judged.loss.verdict == "worse" and judged.accuracy.verdict == "ok"
    assert judged.loss.describe().startswith("+25.6% [")
    assert judged.status == "regression" and judged.failed == ["test loss"]


def test_a_significant_change_smaller_than_half_the_threshold_passes():
    head = [a - 0.003 for a in BASE]
    head[0] += 1e-4  # not exactly constant: a spread to take
    judged = accuracy.judge(runs(BASE), runs(head))
    assert judged.accuracy.low > 0  # significant
    assert judged.accuracy.verdict == "ok"  # but under T/2 = 0.5 points, and T is ruled out


def test_too_noisy_says_cannot_tell_and_how_many_seeds_would():
    head = [0.950, 0.930, 0.962, 0.925, 0.955]  # a spread of two points between pairs
    judged = accuracy.judge(runs(BASE), runs(head))
    assert judged.accuracy.verdict == "unclear" and judged.status == "unclear"
    need = judged.seeds_to_tell
    assert need is not None and need > 5
    changes = [b - h for b, h in zip(BASE, head, strict=True)]
    estimate, sd = statistics.fmean(changes), statistics.stdev(changes)
    target = 0.01 - estimate if abs(estimate) <= 0.005 else abs(estimate)
    assert accuracy._t(need) * sd / math.sqrt(need) < target  # enough at this spread
    assert accuracy._t(need - 1) * sd / math.sqrt(need - 1) >= target  # and the fewest
    assert f"about {need} seeds a side would tell (--accuracy-seeds)" in judged.describe()


def test_better_is_said_and_is_not_a_regression():
    judged = accuracy.judge(runs([a - 0.015 for a in BASE]), runs(BASE))
    assert judged.accuracy.verdict == "better" and judged.status == "improvement"


@pytest.mark.parametrize(("base", "head", "message"), [
    (runs(BASE[:2]), runs(BASE[:2]), "fewer than 3"),
    (runs(BASE), runs(BASE[:4]), "5 and 4 seeds"),
    (runs(BASE), [[float("nan"), a] for a in BASE], "not finite"),
    (runs(BASE), [[0.0, a] for a in BASE], "zero or negative"),
])  # fmt: skip
def test_what_cannot_be_judged_says_why(base, head, message):
    with pytest.raises(ValueError, match=message):
        accuracy.judge(base, head)


@given(st.lists(st.floats(0.5, 0.99), min_size=3, max_size=12),
       st.floats(-0.05, 0.05), st.floats(0.1, 0.5))  # fmt: skip
def test_the_rule_is_the_speed_rule_mirrored_and_shifting_the_head_moves_only_the_centre(
        accuracies, shift, loss):  # fmt: skip
    base = runs(accuracies, loss)
    head = runs([a + shift for a in accuracies], loss)
    judged = accuracy.judge(base, head)
    change = judged.accuracy
    assert change.estimate == pytest.approx(-shift, abs=1e-9)
    assert change.low <= change.estimate <= change.high
    assert change.verdict == accuracy.rule(change.estimate, change.low, change.high, 0.01)
    mirrored = accuracy.judge(head, base).accuracy
    assert mirrored.estimate == pytest.approx(-change.estimate, abs=1e-9)
    flip = {"worse": "better", "better": "worse"}
    if change.verdict in flip:
        assert mirrored.verdict == flip[change.verdict]


class FakePair:
    """Stands for the two side processes: each seed's [loss, accuracy] per side, canned."""

    def __init__(self, base, head):
        self.base, self.head, self.trained, self.said = base, head, [], []

    def say(self, line):
        self.said.append(line)

    def train(self, task, seed):
        self.trained.append(seed)
        return {"full": self.base[seed]}, {"full": self.head[seed]}


def verdict_of(base, head, seeds=6):
    from bench.compare.interleave import SideRun, Task
    from bench.compare.session import CompareOptions, _accuracy

    pair = FakePair(base, head)
    first = SideRun(done={"train_seconds": [1.0], "eval_seconds": [0.1]}, full=base[0])
    second = SideRun(done={"train_seconds": [1.0], "eval_seconds": [0.1]}, full=head[0])
    task = Task("model_1_a", "ci", None, None, 0, "float32", 1)
    comparison = type("C", (), {"raw": {}})()
    options = CompareOptions("HEAD", accuracy_seeds=seeds)
    judged, why, lost = _accuracy(options, pair, task, (first, second), comparison, 10.0)
    return judged, why, lost, pair, comparison.raw["model_1_a"]["accuracy_runs"]


def test_the_verdict_trains_more_seeds_once_when_it_cannot_tell():
    base = [[0.2, 0.950]] * 12
    wide = [0.950, 0.930, 0.965, 0.949, 0.951, 0.948]  # unlucky pairs: cannot tell at 6
    head = [[0.2, a] for a in [*wide, 0.95, 0.951, 0.949, 0.95, 0.952, 0.948]]
    judged, _why, _lost, pair, runs = verdict_of(base, head)
    assert pair.trained == list(range(1, 12)) and len(runs) == 12  # 6, then 12 a side
    assert judged is not None and judged.status == "ok" and len(judged.seeds) == 12
    assert any("cannot tell at 6 seeds a side" in line for line in pair.said)
    clear = [[0.2, 0.950 - 0.0001 * i] for i in range(12)]
    judged, _, _, pair, runs = verdict_of(base, clear)
    assert pair.trained == [1, 2, 3, 4, 5] and judged.status == "ok"  # told at 6: no more


def test_a_head_that_diverges_where_the_base_did_not_is_named():
    base = [[0.2, 0.95]] * 12
    head = [[0.2, 0.95]] * 3 + [None] + [[0.2, 0.95]] * 8
    judged, why, lost, _pair, _ = verdict_of(base, head)
    assert judged is None and lost == (3,) and "diverged at seeds [3]" in why


def test_the_verdicts_figures_are_keras_cross_entropy_and_accuracy():
    import numpy as np

    from bench.compare.side_process import figures

    labels = np.eye(3)[[0, 1, 2, 2]]
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.0, 0.0, 1.0]])
    loss, accuracy_ = figures(probs, labels)
    expected = -(np.log(0.7) + np.log(0.8) + np.log(0.1) + np.log(1 - 1e-7)) / 4
    assert loss == pytest.approx(expected) and accuracy_ == 0.75
