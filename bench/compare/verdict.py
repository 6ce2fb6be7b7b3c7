"""What a paired comparison concludes: the speed ratio with its interval, and the numerics.

Speed. Base and head train the same steps in alternating blocks (`bench.compare.interleave`;
one step each by default). Each block gives the median wall time of its steps, leaving out
each side's first `WARMUP_STEPS` (compilation, warm-up) and partial final batches (another
shape). Block k of the head and block k of the base ran back to back, so their log ratio
cancels what the machine did meanwhile; the pairs are the sample. Blocks of one step gave
the narrowest intervals here (A/A on a 2-core EPYC, model_1_a, 320 steps: ±1.4% with blocks
of 1, ±1.9% of 4, ±2.0% of 8), as the pair's two halves then run closest in time. The wall
clock, not process CPU time (narrower still), because a slowdown can be time spent waiting.

The interval is a rank method: the Hodges-Lehmann estimate (the median of the pairwise means
of the log ratios) with the interval from inverting the Wilcoxon signed-rank test, exact for
any number of pairs. Why not a bootstrap: time on a shared machine is bimodal and bursty, and
a rank method does not care how far a burst lies, while a bootstrap of a dozen pairs covers
less than it says. It assumes the log ratios are symmetric about their centre, which holds
when nothing but noise separates the pairs.

The rule, with the threshold T (default 10%, the slowdown the comparison must catch): a
REGRESSION when the slowdown is significant (its 95% interval lies wholly above 0) and its
estimate exceeds T/2; a pass otherwise when the interval lies below T (a slowdown of T is
ruled out); else it cannot tell, and says so (exit 2): too noisy for this many steps. Half
of T, not T, is the line, so that a real slowdown of T fails whichever side of T its
estimate falls, while a significant but smaller one (a few percent) passes and is shown.
Mirrored, a speed-up is FASTER when its interval lies wholly below 1 and its estimate below
1 - T/2: said, and passing unless the comparison is asked to fail on improvements.

Numerics. With the same seed on the same machine a change that does not touch the numerics
trains an identical history: `identical` says so, and that is the accuracy verdict, exact and
free. Otherwise the first epoch where the histories part, and the accuracy verdict over
several seeds a side (`bench.compare.accuracy`) judges whether the head learns worse.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tabulate import tabulate

from bench.compare.accuracy import Accuracy
from bench.measurement.metrics import WARMUP_STEPS
from bench.vocabulary import DEFAULT_THRESHOLD

CONFIDENCE = 0.95
MIN_PAIRS = 6
"""Below this many block pairs no 95% interval excludes anything: cannot compare."""

Step = Sequence[float]
"""One step as the side process reports it: wall seconds, CPU seconds, 1 if a partial batch."""


class RatioVerdict:
    """What every verdict shows: its ratio (head over base) as a signed change with its interval.

    Shared by `Speed` and `Total`, which hold `ratio`, `low` and `high`.
    """

    ratio: float
    low: float
    high: float

    @property
    def change(self) -> float:
        """The signed change: +0.10 is 10% slower."""
        return self.ratio - 1

    def describe(self) -> str:
        """E.g. '+10.2% [+8.1%, +12.0%]'."""
        return f"{self.change:+.1%} [{self.low - 1:+.1%}, {self.high - 1:+.1%}]"


@dataclass(frozen=True)
class Speed(RatioVerdict):
    """The head's step time against the base's, from paired blocks."""

    base_step: float
    """Median seconds per timed step of the base."""
    head_step: float
    ratio: float
    """Head over base (Hodges-Lehmann): above 1 is slower."""
    low: float
    high: float
    """The 95% interval of the ratio."""
    pairs: int
    threshold: float
    verdict: str
    """"slower" (a regression), "faster", "ok", or "unclear" (cannot tell at this noise)."""


@dataclass(frozen=True)
class Total(RatioVerdict):
    """The head's total seconds of training (or of evaluation) against the base's, paired."""

    what: str
    """'training' or 'evaluation'."""
    base_seconds: float
    head_seconds: float
    ratio: float
    """Head total over base total: above 1 is slower."""
    low: float
    high: float
    """The nominal 95% interval of the ratio, from the typical pair's noise (`paired_total`:
    it covers less than that across runs, measured)."""
    pairs: int
    threshold: float
    verdict: str
    """"slower" (a regression), "faster", "ok", or "unclear" (cannot tell at this noise)."""


@dataclass(frozen=True)
class Numerics:
    """Whether the two histories are the same, and if not, where they part and how far."""

    identical: bool
    parted_at: int | None
    """The first epoch (1-based) whose loss or accuracies differ; None when identical."""
    base_accuracy: float | None
    head_accuracy: float | None
    """The compared seed's final test accuracy on the budget's split (one seed: not a verdict)."""

    @property
    def difference(self) -> float | None:
        """Head's final test accuracy minus base's."""
        if self.base_accuracy is None or self.head_accuracy is None:
            return None
        return self.head_accuracy - self.base_accuracy

    def describe(self) -> str:
        """E.g. 'identical' or 'part at epoch 2'."""
        if self.identical:
            return "identical"
        text = f"part at epoch {self.parted_at}" if self.parted_at else "final differs"
        if self.difference is None:
            return text + "; a side did not finish"
        return text


def timed_blocks(blocks: Sequence[Sequence[Step]]) -> list[list[float]]:
    """Return each block's wall seconds of the steps that count.

    Warm-up steps and partial batches are left out (a block may end up empty).
    """
    timed, index = [], 0
    for block in blocks:
        timed.append([step[0] for i, step in enumerate(block, index)
                      if i >= WARMUP_STEPS and not step[2]])  # fmt: skip
        index += len(block)
    return timed


def block_ratios(base: Sequence[list[float]], head: Sequence[list[float]]) -> list[float]:
    """Return log(head / base) of each pair of timed blocks' median step times."""
    if len(base) != len(head):
        raise ValueError(f"the sides ran {len(base)} and {len(head)} blocks")
    pairs = zip(base, head, strict=True)
    return [math.log(statistics.median(h) / statistics.median(b)) for b, h in pairs if b and h]


EXACT_PAIRS = 200
"""Up to this many pairs the signed-rank critical value is counted exactly (0.2 s at 200,
cached); beyond, the normal approximation, which the tests check against the exact one."""


@lru_cache(maxsize=128)
def signed_rank_critical(n: int, confidence: float = CONFIDENCE) -> int:
    """Return c, the largest value with P(T+ <= c) <= (1 - confidence) / 2 for n pairs.

    Up to `EXACT_PAIRS`, the exact null distribution of Wilcoxon's signed-rank statistic, by
    counting the subsets of ranks 1..n with each sum (n passes over n^2/2 counts: 8x the time
    a doubling). Beyond, its normal approximation with a continuity correction (mean
    n(n+1)/4, variance n(n+1)(2n+1)/24), which at 150-200 pairs is within one of the exact
    value (`tests/test_compare.py`). -1 when no c qualifies (too few pairs).
    """
    if n > EXACT_PAIRS:
        from scipy import stats

        mean = n * (n + 1) / 4
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        z = float(stats.norm.ppf((1 - confidence) / 2))
        return max(-1, math.floor(mean + z * sd - 0.5))
    counts = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):
        for total in range(len(counts) - 1, rank - 1, -1):
            counts[total] += counts[total - rank]
    tail, cumulative, c = (1 - confidence) / 2, 0, -1
    for total, count in enumerate(counts):
        cumulative += count
        if cumulative / 2**n > tail:
            break
        c = total
    return c


def walsh_order(values: Sequence[float], k: int) -> float:
    """Return the k-th smallest (1-based) Walsh average of `values`, without listing them all.

    The Walsh averages are (v_i + v_j) / 2 for i <= j: n(n+1)/2 of them, too many to sort at a
    full budget's 7,000 pairs (24 million). Counting those at or below x takes one sorted
    search (O(n log n)); bisecting x on that count, then taking the largest average at or
    below the bound found, gives the order statistic (exact but for a rounding of the sums,
    a few ulps: `tests/test_compare.py` checks it against the sorted list).
    """
    import numpy as np

    a = np.sort(np.asarray(values, dtype=float))
    n = len(a)
    if not 1 <= k <= n * (n + 1) // 2:
        raise ValueError(f"no Walsh average of rank {k} among {n * (n + 1) // 2}")
    index = np.arange(n)

    def at_or_below(x: float) -> int:
        ends = np.searchsorted(a, 2 * x - a, side="right")  # j < ends[i]: a_i + a_j <= 2x
        return int(np.maximum(ends - index, 0).sum())

    low, high = float(a[0]), float(a[-1])  # at_or_below(low) >= 1; at_or_below(high) = all
    if at_or_below(low) >= k:
        high = low
    while high > low:
        middle = low + (high - low) / 2
        if middle in (low, high):
            break
        if at_or_below(middle) >= k:
            high = middle
        else:
            low = middle
    ends = np.searchsorted(a, 2 * high - a, side="right") - 1  # the largest j per i
    valid = ends >= index
    return float(((a[valid] + a[ends[valid]]) / 2).max())


def hodges_lehmann(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Return the Hodges-Lehmann estimate of the centre of `values` and its interval.

    The estimate is the median of the Walsh averages (pairwise means, each value with itself
    included); the interval runs from the (c+1)-th to the (N-c)-th of them, c from
    `signed_rank_critical`: exact coverage >= confidence (approximate past `EXACT_PAIRS`).
    Each order statistic is found without sorting all N (`walsh_order`), so a comparison of
    thousands of steps takes well under a second.
    """
    n = len(values)
    c = signed_rank_critical(n, confidence)
    if c < 0:
        raise ValueError(f"{n} pairs are too few for a {confidence:.0%} interval")
    total = n * (n + 1) // 2
    middle = (walsh_order(values, (total + 1) // 2) + walsh_order(values, total // 2 + 1)) / 2
    return middle, walsh_order(values, c + 1), walsh_order(values, total - c)


def speed(base: Sequence[Sequence[Step]], head: Sequence[Sequence[Step]],
          threshold: float = DEFAULT_THRESHOLD) -> Speed:  # fmt: skip
    """Compare the head's blocks with the base's; ValueError when there are too few pairs."""
    timed_base, timed_head = timed_blocks(base), timed_blocks(head)
    ratios = block_ratios(timed_base, timed_head)
    if len(ratios) < MIN_PAIRS:
        raise ValueError(
            f"{len(ratios)} timed block pairs, fewer than {MIN_PAIRS}: train more steps "
            "(--epochs, --train-samples) or use smaller blocks (--block)"
        )
    centre, low, high = (math.exp(v) for v in hodges_lehmann(ratios))
    verdict = rule(centre, low, high, threshold)
    base_steps = [s for block in timed_base for s in block]
    head_steps = [s for block in timed_head for s in block]
    return Speed(statistics.median(base_steps), statistics.median(head_steps), centre, low, high,
                 len(ratios), threshold, verdict)  # fmt: skip


def rule(estimate: float, low: float, high: float, threshold: float) -> str:
    """Apply the comparison's rule to a ratio and its interval.

    'slower', 'faster' (the mirror of slower), 'ok' or 'unclear'.
    """
    if low > 1 and estimate - 1 > threshold / 2:
        return "slower"
    if high < 1 and 1 - estimate > threshold / 2:
        return "faster"
    if high - 1 < threshold:
        return "ok"
    return "unclear"


WINSORIZED = 0.2
"""The fraction of paired differences at each end clipped before their spread is taken."""


def paired_total(what: str, base: Sequence[float], head: Sequence[float],
                 threshold: float = DEFAULT_THRESHOLD) -> Total:  # fmt: skip
    """Compare two totals of paired durations (each pair ran back to back, interleaved).

    The estimate is the ratio of the totals, every second counted: a burst that lands in a
    few pairs moves it by all it costs. Its interval is Student's for the sum of the paired
    differences with their spread taken winsorized (the `WINSORIZED` fraction at each end
    clipped, as Yuen's test does): the noise is measured on the typical pair, so a cost
    concentrated in a few pairs adds to the total without widening the interval that judges
    it, while noise that is symmetric between the sides adds to neither. ValueError when there
    are fewer than `MIN_PAIRS` pairs.

    Measured (docs/measurements/gate-power, 40 A/A comparisons at the ci budget): this
    interval is narrower than its nominal 95%: it excluded 0 in 21 of 40 for training time
    and 14 of 40 for evaluation time, because each side is one process for the whole run and
    a process keeps a speed of its own (memory placement, caches) of a percent or two that no
    pairing cancels. What holds false alarms down is the rule's second condition, the
    estimate above T/2: the A/A estimates ranged -3.4%..+2.3% (training) and -5.1%..+7.7%
    (evaluation), and 0 and 1 of 40 failed.
    """
    import numpy as np
    from scipy import stats

    if len(base) != len(head):
        raise ValueError(f"{what}: the sides gave {len(base)} and {len(head)} durations")
    n = len(base)
    if n < MIN_PAIRS:
        raise ValueError(f"{what}: {n} pairs, fewer than {MIN_PAIRS}: cannot compare totals")
    differences = np.asarray(head, dtype=float) - np.asarray(base, dtype=float)
    spread = float(np.std(stats.mstats.winsorize(differences, limits=(WINSORIZED, WINSORIZED)),
                          ddof=1))  # fmt: skip
    total_base, total_head = float(np.sum(base)), float(np.sum(head))
    if total_base <= 0:
        raise ValueError(f"{what}: the base's total is {total_base} s: nothing to compare")
    margin = float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)) * spread * math.sqrt(n)
    ratio = total_head / total_base
    low, high = (total_head - margin) / total_base, (total_head + margin) / total_base
    return Total(what, total_base, total_head, ratio, low, high, n, threshold,
                 rule(ratio, low, high, threshold))  # fmt: skip


def training_durations(blocks: Sequence[Sequence[Step]],
                       epoch_seconds: Sequence[float]) -> list[float]:  # fmt: skip
    """Return a side's training time as paired durations that sum to what the user waits for.

    Every step after the process's first `WARMUP_STEPS` (compilation and warm-up: one pair,
    too noisy to pair, shown apart as `compile_seconds`), then per epoch the time outside its
    steps (`fit`'s set-up and end, `on_epoch_end` callbacks). Both sides give the same count.
    """
    steps = [step[0] for block in blocks for step in block]
    per_epoch = len(steps) // max(len(epoch_seconds), 1)
    outside = [seconds - sum(steps[k * per_epoch : (k + 1) * per_epoch])
               for k, seconds in enumerate(epoch_seconds)]  # fmt: skip
    return steps[WARMUP_STEPS:] + outside


def compile_seconds(blocks: Sequence[Sequence[Step]]) -> float:
    """Return the wall seconds of a side's first `WARMUP_STEPS` steps (tracing, compiling)."""
    return sum([step[0] for block in blocks for step in block][:WARMUP_STEPS])


def numerics(base_epochs: Sequence[Sequence[float]], head_epochs: Sequence[Sequence[float]],
             base_final: Sequence[float] | None,
             head_final: Sequence[float] | None) -> Numerics:  # fmt: skip
    """Compare two histories (per epoch: loss, accuracy, val_loss, val_accuracy) and finals."""
    parted = next((i + 1 for i, (b, h) in enumerate(zip(base_epochs, head_epochs, strict=False))
                   if list(b) != list(h)), None)  # fmt: skip
    if parted is None and len(base_epochs) != len(head_epochs):
        parted = min(len(base_epochs), len(head_epochs)) + 1
    same_final = base_final is not None and list(base_final) == list(head_final or [])
    return Numerics(
        identical=parted is None and same_final,
        parted_at=parted,
        base_accuracy=base_final[1] if base_final else None,
        head_accuracy=head_final[1] if head_final else None,
    )


@dataclass(frozen=True)
class ArchResult:
    """One architecture's comparison: the three speed verdicts and the numerics, or an error."""

    arch: str
    speed: Speed | None
    """The typical step (Hodges-Lehmann): small uniform slowdowns, through the noise."""
    numerics: Numerics | None
    error: str | None = None
    """Why it could not be compared."""
    note: str | None = None
    """What else a reader should know (precisions or data that differ)."""
    training: Total | None = None
    """Total training time: what the user waits for, bursts included."""
    evaluation: Total | None = None
    """Total evaluation time."""
    compile_seconds: tuple[float, float] | None = None
    """Base's and head's first steps (tracing, compilation): shown, one pair, not judged."""
    accuracy: Accuracy | None = None
    """The accuracy verdict over several seeds a side; None when the histories are identical
    (then that is the verdict) or when it was not asked for (`accuracy_error` says why)."""
    accuracy_error: str | None = None
    """Why the histories parted but no accuracy verdict could be reached."""
    diverged: tuple[int, ...] = ()
    """Seeds the head did not finish (its loss not finite) where the base did: a regression."""

    @property
    def verdicts(self) -> dict[str, Speed | Total | None]:
        """The three speed verdicts by name."""
        return {"step": self.speed, "training": self.training, "evaluation": self.evaluation}

    @property
    def failed(self) -> list[str]:
        """The names of the verdicts that found a slowdown, or a head that learns worse."""
        slower = [n for n, v in self.verdicts.items() if v is not None and v.verdict == "slower"]
        return slower + (self.accuracy.failed if self.accuracy else []) + (
            ["diverged"] if self.diverged else [])  # fmt: skip

    @property
    def improved(self) -> list[str]:
        """The names of the verdicts that found a speed-up, or a head that learns better."""
        faster = [n for n, v in self.verdicts.items() if v is not None and v.verdict == "faster"]
        return faster + [c.what for c in (self.accuracy.changes if self.accuracy else ())
                         if c.verdict == "better"]  # fmt: skip

    @property
    def accuracy_unclear(self) -> bool:
        """Whether the histories parted and the accuracy verdict could not tell (or not run)."""
        if self.accuracy is not None:
            return self.accuracy.status == "unclear"
        return self.accuracy_error is not None and not self.diverged

    @property
    def status(self) -> str:
        """'regression', 'cannot compare', 'improvement' (better, nothing worse) or 'ok'."""
        if self.failed:
            return "regression"
        found = self.verdicts.values()
        if self.error or self.accuracy_unclear or any(v is None or v.verdict == "unclear"
                                                      for v in found):  # fmt: skip
            return "cannot compare"
        return "improvement" if self.improved else "ok"

    def accuracy_cell(self) -> str:
        """Return the accuracy verdict as the table shows it."""
        if self.numerics is not None and self.numerics.identical:
            return "identical histories: same accuracy"
        if self.accuracy is not None:
            return self.accuracy.describe()
        return self.accuracy_error or ""


def exit_code(results: Sequence[ArchResult], fail_on_improvement: bool = False) -> int:
    """Return the exit status, the gate's convention.

    1 when any architecture regressed (or, asked, improved), else 2 when any could not be
    compared (an error, or too noisy to tell), else 0.
    """
    statuses = {r.status for r in results}
    if "regression" in statuses or (fail_on_improvement and "improvement" in statuses):
        return 1
    return 2 if "cannot compare" in statuses else 0


VERDICT_WORDS = {"slower": "SLOWER", "faster": "FASTER", "ok": "ok", "unclear": "CANNOT TELL"}


def _cell(v: RatioVerdict | None) -> str:
    return f"{v.describe()} {VERDICT_WORDS[v.verdict]}" if v is not None else ""


def table(results: Sequence[ArchResult], tablefmt: str = "simple") -> str:
    """Return the human table: each verdict's change with its interval, the verdict, numerics."""
    rows = []
    for r in results:
        s, t, e, n = r.speed, r.training, r.evaluation, r.numerics
        verdict = ("REGRESSION (" + ", ".join(r.failed) + ")" if r.failed
                   else ("FASTER (" if set(r.improved) <= set(r.verdicts) else "BETTER (")
                   + ", ".join(r.improved) + ")" if r.status == "improvement"
                   else {"ok": "ok"}.get(r.status, "CANNOT COMPARE"))  # fmt: skip
        rows.append([
            r.arch,
            f"{s.base_step * 1000:.1f} -> {s.head_step * 1000:.1f}" if s else "",
            _cell(s),
            f"{t.base_seconds:.2f} -> {t.head_seconds:.2f}" if t else "",
            _cell(t),
            _cell(e),
            r.accuracy_cell(),
            verdict,
            "; ".join(filter(None, [n.describe() if n else None, r.error, r.note])),
        ])  # fmt: skip
    headers = ["arch", "ms/step", "typical step [95% CI]", "training s",
               "training time [interval]", "evaluation time [interval]",
               "accuracy and loss (all 10,000 test images) [95% CI]", "verdict",
               "history (same seed)"]  # fmt: skip
    return tabulate(rows, headers=headers, disable_numparse=True, tablefmt=tablefmt)
