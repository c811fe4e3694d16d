"""The statistics every number of a study rests on: one Student-t interval (a mean over seeds, and the mean of
per-seed differences alike), the percentile bootstrap of a mean difference, and Pearson's r."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def t_interval(values: Any) -> tuple[int, float, float]:
    """(n, mean, half width of the 95% Student-t interval) of the finite values given; the half width is NaN for
    n < 2 and the mean NaN for n = 0."""
    from scipy import stats

    series = pd.Series(values, dtype="float64").dropna()
    n = len(series)
    if n == 0:
        return 0, math.nan, math.nan
    mean = float(series.mean())
    if n < 2:
        return n, mean, math.nan
    return n, mean, float(stats.t.ppf(0.975, n - 1) * series.std(ddof=1) / math.sqrt(n))


def mean_ci(values: Any) -> tuple[int, float, float]:
    """(n, mean, half width of the 95% Student-t interval) over seeds: `t_interval`."""
    return t_interval(values)


def paired_t(diffs: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% paired Student-t interval of per-seed differences; NaN bounds for fewer than 2
    pairs."""
    _, mean, half = t_interval(diffs)
    return mean, mean - half, mean + half


def bootstrap(diffs: np.ndarray) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean difference (seeded, so a report is reproducible); NaN
    below 6 pairs, where resampling a handful of values says less than the t interval."""
    if len(diffs) < 6 or float(np.ptp(diffs)) == 0.0:
        return (math.nan, math.nan) if len(diffs) < 6 else (float(diffs[0]), float(diffs[0]))
    from scipy import stats

    result = stats.bootstrap((diffs,), np.mean, confidence_level=0.95, n_resamples=2000, method="percentile",
                             rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def pearson(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    """(r, two-sided p of r = 0); NaN when fewer than 3 points or either side is constant."""
    from scipy import stats

    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    result = stats.pearsonr(x, y)
    return float(result.statistic), float(result.pvalue)
