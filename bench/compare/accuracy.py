"""The comparison's accuracy verdict: whether the head learns worse, over several seeds a side.

When base and head train identical histories (same seed, same machine), that is the verdict:
exact, and free. When they part (another kernel, library or recipe), one seed a side says
nothing: an honest change moves a `ci` run's test accuracy by as much as a real regression of
half a point. So the comparison trains more seeds on both sides, the same seeds on each, and
judges two figures of each pair of runs (and when it cannot tell, twice as many seeds, once),
measured on the whole MNIST test split (10,000
images; `bench.compare.side_process.full_test`), not the budget's 2,000, which alone made
most of a run's spread (docs/comparison.md, "Accuracy"):

* **test accuracy**, as the change in points (head minus base) of each seed's pair;
* **test loss**, as the log ratio of each pair, shown as a percentage: it moves before
  accuracy (a tenth of the labels wrong raises it by a fifth while accuracy barely moves).

Each is a mean of the paired changes with Student's 95% interval over the pairs (the pairs
are independent runs: an honest change decorrelates the two runs of a seed within an epoch,
so pairing buys little, but it costs nothing). The rule is the speed verdicts' shape
(`bench.compare.verdict.rule`), on the harm (accuracy lost, loss gained) against a threshold
T: **worse** (a regression, exit 1) when the interval lies wholly on the harmful side and the
estimate beyond T/2; **better** mirrored; **ok** when a harm of T is ruled out; else **cannot
tell** (exit 2), saying how many seeds would tell at the spread seen.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SEEDS = 6
"""Seeds a side when the histories part (the compared seed and the next ones); when the
verdict cannot tell at that many, the comparison trains as many again, once (`EXTEND`).
Measured at `ci` (docs/comparison.md, "Accuracy"): a run now and then ends more than a
point below the others (3 of 40 runs of model_1_a), and with 5 seeds a side such a run left
8 of 20 comparisons of an honest change of data order unable to tell; 6, then 12 when
needed, told all 20 apart while catching every planted drop; 3 told almost none."""
EXTEND = 2
"""When the verdict cannot tell, the seeds a side are multiplied by this, once."""
MIN_SEEDS = 3
"""Fewer pairs give Student intervals too wide (t = 12.7 at 2) to rule anything out."""
ACCURACY_THRESHOLD = 0.01
"""T for test accuracy: 1 point (0.01), the drop the comparison must catch."""
LOSS_THRESHOLD = 0.15
"""T for test loss: a 15% rise (as a log ratio), the rise the comparison must catch. At 10%,
an honest change that decorrelates the runs left the interval above T more often (a run's
test loss spreads by 4-5% between seeds at `ci`, a pair's log ratio by 5-7%, more with an
unlucky run); at 20%, the half-point drop of accuracy (+9% of loss) passed
(docs/comparison.md, "Accuracy")."""
CONFIDENCE = 0.95
MAX_SEEDS_SAID = 200
"""`seeds_to_tell` says "more than this" beyond it."""


@dataclass(frozen=True)
class Change:
    """One figure's paired change, head against base, with its interval and verdict.

    `estimate`, `low` and `high` are harms: accuracy lost in points as a fraction (0.01 is
    one point lower), or the log ratio of the losses (0.1 is about 10.5% higher).
    """

    what: str
    """'test accuracy' or 'test loss'."""
    estimate: float
    low: float
    high: float
    sd: float
    """The paired changes' standard deviation (in the estimate's unit)."""
    pairs: int
    threshold: float
    verdict: str
    """'worse', 'better', 'ok' or 'unclear'."""
    seeds_to_tell: int | None
    """When unclear: seeds a side that would tell at this spread (None: not unclear)."""

    def describe(self) -> str:
        """E.g. '-1.02 points [-1.30, -0.74]' or '+12.1% [+8.0%, +16.3%]', signed as changes."""
        if self.what == "test accuracy":
            sign = -100
            return (f"{sign * self.estimate:+.2f} points [{sign * self.high:+.2f}, "
                    f"{sign * self.low:+.2f}]")  # fmt: skip
        return (f"{math.expm1(self.estimate):+.1%} [{math.expm1(self.low):+.1%}, "
                f"{math.expm1(self.high):+.1%}]")  # fmt: skip


@dataclass(frozen=True)
class Accuracy:
    """The accuracy verdict of one architecture: both figures over the same seeds."""

    seeds: tuple[int, ...]
    accuracy: Change
    loss: Change

    @property
    def changes(self) -> tuple[Change, Change]:
        """Both figures."""
        return self.accuracy, self.loss

    @property
    def status(self) -> str:
        """'regression' (either worse), 'improvement' (better, none worse), 'ok' or 'unclear'."""
        verdicts = {c.verdict for c in self.changes}
        if "worse" in verdicts:
            return "regression"
        if "unclear" in verdicts:
            return "unclear"
        return "improvement" if "better" in verdicts else "ok"

    @property
    def failed(self) -> list[str]:
        """The figures that got worse."""
        return [c.what for c in self.changes if c.verdict == "worse"]

    @property
    def seeds_to_tell(self) -> int | None:
        """Seeds a side that would settle every unclear figure (None: nothing unclear)."""
        found = [c.seeds_to_tell for c in self.changes if c.seeds_to_tell is not None]
        return max(found) if found else None

    def describe(self) -> str:
        """One cell: both changes, the verdict of each, and what to do when unclear."""
        words = {"worse": "WORSE", "better": "better", "ok": "ok", "unclear": "CANNOT TELL"}
        text = "; ".join(f"{c.what} {c.describe()} {words[c.verdict]}" for c in self.changes)
        text += f" ({len(self.seeds)} seeds a side)"
        if self.seeds_to_tell is not None:
            more = (f"more than {MAX_SEEDS_SAID}" if self.seeds_to_tell > MAX_SEEDS_SAID
                    else str(self.seeds_to_tell))  # fmt: skip
            text += f"; about {more} seeds a side would tell (--accuracy-seeds)"
        return text


def _t(pairs: int) -> float:
    from scipy import stats

    return float(stats.t.ppf((1 + CONFIDENCE) / 2, pairs - 1))


def rule(estimate: float, low: float, high: float, threshold: float) -> str:
    """Apply the speed verdicts' rule to a harm: worse, better, ok or unclear."""
    if low > 0 and estimate > threshold / 2:
        return "worse"
    if high < 0 and estimate < -threshold / 2:
        return "better"
    if high < threshold:
        return "ok"
    return "unclear"


def seeds_to_tell(estimate: float, sd: float, threshold: float) -> int:
    """Seeds a side whose interval, at this estimate and spread, would reach a verdict.

    An estimate beyond T/2 needs the interval clear of 0 (worse); one nearer 0 needs it
    below T (ok). Said at the spread seen, which is itself uncertain: a guide, not a promise.
    """
    target = abs(estimate) if abs(estimate) > threshold / 2 else threshold - estimate
    if sd == 0:
        return MIN_SEEDS
    for n in range(MIN_SEEDS, MAX_SEEDS_SAID + 1):
        if _t(n) * sd / math.sqrt(n) < target:
            return n
    return MAX_SEEDS_SAID + 1


def change(what: str, harms: Sequence[float], threshold: float) -> Change:
    """Judge one figure from its paired harms (one per seed); ValueError below MIN_SEEDS."""
    n = len(harms)
    if n < MIN_SEEDS:
        raise ValueError(f"{what}: {n} seeds a side, fewer than {MIN_SEEDS}: no interval")
    if not all(math.isfinite(h) for h in harms):
        raise ValueError(f"{what}: a run's figure is not finite (a diverged run?)")
    estimate, sd = statistics.fmean(harms), statistics.stdev(harms)
    margin = _t(n) * sd / math.sqrt(n)
    low, high = estimate - margin, estimate + margin
    verdict = rule(estimate, low, high, threshold)
    more = seeds_to_tell(estimate, sd, threshold) if verdict == "unclear" else None
    return Change(what, estimate, low, high, sd, n, threshold, verdict, more)


def judge(base: Sequence[Sequence[float]], head: Sequence[Sequence[float]],
          seeds: Sequence[int] = (), accuracy_threshold: float = ACCURACY_THRESHOLD,
          loss_threshold: float = LOSS_THRESHOLD) -> Accuracy:  # fmt: skip
    """Judge the head's runs against the base's, paired by seed: each [loss, accuracy].

    ValueError when the sides ran different numbers of seeds or too few.
    """
    if len(base) != len(head):
        raise ValueError(f"the sides trained {len(base)} and {len(head)} seeds")
    lost = [b[1] - h[1] for b, h in zip(base, head, strict=True)]
    try:
        gained = [math.log(h[0] / b[0]) for b, h in zip(base, head, strict=True)]
    except (ValueError, ZeroDivisionError):
        raise ValueError("test loss: a run's loss is zero or negative") from None
    return Accuracy(tuple(seeds) or tuple(range(len(base))),
                    change("test accuracy", lost, accuracy_threshold),
                    change("test loss", gained, loss_threshold))  # fmt: skip
