"""The statistics the gate and the report share: a sample's summary and Welch's test.

A leaf (it imports nothing of the harness): records' loaders, baselines, the report and the
history all summarise values the same way. A baseline's stored statistics are a `Summary`
with the checks of a file that may be crafted (`bench.storage.baselines.MetricStats`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """n, mean, sample standard deviation, min and max of some values, and the values."""

    n: int
    mean: float
    sd: float
    min: float
    max: float
    values: tuple[float, ...]


def describe(values: Sequence[float]) -> Summary:
    """Summarise `values` (at least one); sd is 0 for a single value."""
    if not values:
        raise ValueError("describe() needs at least one value")
    return Summary(
        n=len(values),
        mean=statistics.fmean(values),
        sd=statistics.stdev(values) if len(values) > 1 else 0.0,
        min=min(values),
        max=max(values),
        values=tuple(values),
    )


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Return Welch's two-sided p-value for a difference in means (2+ values each).

    When neither sample varies, the t statistic is undefined: the samples are then either
    identical (p = 1) or certainly different (p = 0).
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs 2+ values each, got {len(a)} and {len(b)}")
    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        return 1.0 if statistics.fmean(a) == statistics.fmean(b) else 0.0
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
