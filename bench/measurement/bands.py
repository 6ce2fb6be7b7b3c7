"""The stored-baseline gate's bands, as data: one row per gated metric, said once here.

Each `Band` names a figure of `bench.measurement.metrics`, the direction that fails, its
bound from the baseline's statistics over seeds and its `Tolerance` (the formula and the same
formula in words, side by side), when it applies and why. `bench.gate` checks runs with
`applicable`; every baseline made (`bench.measurement.aggregate`) carries `describe` of its
tolerance as `band_rule`; the README's and docs/gate.md's tables point here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.measurement import metrics
from bench.storage.baselines import ArchEntry, MetricStats, Tolerance

ALWAYS = "always"
SPEED = "speed"
"""Only with speed gated (`--gate all`), against a baseline of the run's own device class,
for a run that had its machine to itself (`bench.gate.Gate.check` says which were not), and
only when the baseline has per-step timings (version 5 and later)."""
LEGACY_SPEED = "speed, legacy"
"""As SPEED, for a baseline made before per-step timings (version 4 and older)."""
TARGET = "target"
"""Only when every seed of the baseline reached the budget's target accuracy."""


@dataclass(frozen=True)
class Band:
    """One gated metric: which way it fails, its bound, in words, when it applies, why."""

    metric: str
    direction: str
    """"min": the observed value must be >= the bound; "max": <=."""
    bound: Callable[[Tolerance, MetricStats], float]
    words: Callable[[Tolerance], str]
    applies: str
    why: str

    def passes(self, observed: float, bound: float) -> bool:
        """Whether an observed value lies inside this band's bound."""
        return observed >= bound if self.direction == "min" else observed <= bound


BANDS = (
    Band("test_accuracy", "min",
         lambda t, s: s.mean - max(t.k * s.sd, t.accuracy_floor),
         lambda t: f"fail below mean - max({t.k} * sd, {t.accuracy_floor})", ALWAYS,
         "k * sd lets an honest rerun with another seed pass; the floor keeps the band from "
         "collapsing when a few seeds agree"),
    Band("test_loss", "max",
         lambda t, s: s.mean + max(t.k * s.sd, t.loss_floor_rel * s.mean),
         lambda t: f"fail above mean + max({t.k} * sd, {t.loss_floor_rel} * mean)", ALWAYS,
         "as accuracy; the floor is relative: losses differ several-fold between budgets. A "
         "floor of 0.15 caught more planted drops but failed one more honest run in 104 on "
         "another CPU kind (docs/gate.md)"),
    Band(metrics.STEP_CLOCK, "max",
         lambda t, s: s.mean + max(t.step_k * s.sd, t.step_floor * s.mean),
         lambda t: f"fail above mean + max({t.step_k} * sd, {t.step_floor} * mean)", SPEED,
         "the wall time of the typical step varied least among the wall clocks here (docs/"
         "gate.md); a stored band cannot travel between devices, so only on the same class"),
    *(Band(metric, "max",
           lambda t, s: s.mean + max(t.time_k * s.sd, t.time_floor * s.mean),
           lambda t: f"fail above mean + max({t.time_k} * sd, {t.time_floor} * mean)", SPEED,
           "a stall in a few steps or a slower evaluation leaves the typical step as it was, "
           "not the seconds a user waits") for metric in metrics.TIMES),
    Band("efficiency", "min",
         lambda t, s: s.min * (1 - t.efficiency_margin),
         lambda t: f"fail below min * (1 - {t.efficiency_margin})", LEGACY_SPEED,
         "the rule before step times: achieved FLOP/s over the matmul peak of the same process"),
    Band("epochs_to_target", "max",
         lambda t, s: s.max * (1 + t.target_margin),
         lambda t: f"fail when not reached, or above max * (1 + {t.target_margin})", TARGET,
         "a change that trains faster per step but needs more epochs fails here (MLPerf's and "
         "AlgoPerf's time to accuracy); counted in epochs, so it travels between machines"),
)  # fmt: skip
BY_METRIC = {band.metric: band for band in BANDS}


def bound(metric: str, tolerance: Tolerance, stats: MetricStats) -> float:
    """Return the bound of one metric's band."""
    return BY_METRIC[metric].bound(tolerance, stats)


def describe(tolerance: Tolerance) -> dict[str, str]:
    """Return every band in words with this tolerance's numbers (a baseline's `band_rule`)."""
    return {b.metric: b.words(tolerance) + ("" if b.applies == ALWAYS else f" ({b.applies})")
            for b in BANDS}  # fmt: skip


def applicable(entry: ArchEntry, speed: bool) -> list[tuple[Band, MetricStats]]:
    """Return the bands that apply to one architecture's entry, with its statistics.

    `speed`: whether speed is gated for this run. The step and the times are the speed bands
    of a baseline with step times (version 5 and later); efficiency is the one of a baseline
    without them.
    """
    has_steps = entry.stats(metrics.STEP_CLOCK) is not None
    wanted = {ALWAYS, TARGET} | ({SPEED if has_steps else LEGACY_SPEED} if speed else set())
    found = [(band, entry.stats(band.metric)) for band in BANDS if band.applies in wanted]
    return [(band, stats) for band, stats in found if stats is not None]
