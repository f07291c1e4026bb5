"""Aggregate scores over seeds with honest uncertainty (issue 13), as rliable defines them
(Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice"): the mean, the median
and the interquartile mean (IQM: the mean of the middle 50 % of the runs, scipy's
``trim_mean(x, 0.25)``), each with a 95 % percentile bootstrap confidence interval over the
runs. With one task, rliable's stratified bootstrap is the ordinary bootstrap of the runs;
rliable's 50,000 resamples, and a fixed bootstrap seed so the same scores give the same file.

scipy does the statistics (``trim_mean``, ``bootstrap``); this module only names them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps

RESAMPLES = 50_000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


def iqm(x, axis=None):
    return sps.trim_mean(x, 0.25, axis=axis)


STATISTICS = {"mean": np.mean, "median": np.median, "iqm": iqm}


def interval(scores, statistic, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile bootstrap CI of STATISTIC over SCORES (one per run)."""
    x = np.asarray(scores, np.float64)
    if x.size < 2 or np.all(x == x[0]):  # nothing to resample: the interval is the point
        value = float(statistic(x)) if x.size else math.nan
        return value, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few distinct values: scipy says so; the CI is fine
        ci = sps.bootstrap((x,), lambda a, axis: statistic(a, axis=axis), method="percentile",
                           n_resamples=RESAMPLES, confidence_level=confidence,
                           vectorized=True, rng=BOOTSTRAP_SEED).confidence_interval
    return float(ci.low), float(ci.high)


def aggregate(scores) -> dict:
    """{"n", and per statistic {"value", "ci": [low, high]}} of SCORES (one per run)."""
    x = np.asarray(scores, np.float64)
    out = {"n": int(x.size)}
    for name, fn in STATISTICS.items():  # no scores (no evaluation): no figures
        out[name] = ({"value": float(fn(x)), "ci": list(interval(x, fn))} if x.size
                     else {"value": None, "ci": [None, None]})
    return out


def difference_interval(a, b, confidence: float) -> tuple[float, float]:
    """The percentile bootstrap CI of IQM(A) - IQM(B), A and B resampled independently (two
    groups of runs, e.g. a run's seeds and the golden file's)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    point = float(iqm(a) - iqm(b))
    if a.size < 2 or b.size < 2 or (np.all(a == a[0]) and np.all(b == b[0])):
        return point, point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = sps.bootstrap((a, b), lambda x, y, axis: iqm(x, axis=axis) - iqm(y, axis=axis),
                           method="percentile", n_resamples=RESAMPLES // 5,
                           confidence_level=confidence, vectorized=True,
                           rng=BOOTSTRAP_SEED).confidence_interval
    return float(ci.low), float(ci.high)
