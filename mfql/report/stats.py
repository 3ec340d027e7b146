"""Statistics of the reported protocol: per-run scores, mean +- std over seeds, IQM with stratified
bootstrap confidence intervals (as rliable), and the two-sample test used for verification."""

from __future__ import annotations

import numpy as np
from scipy import stats


def run_score(steps: np.ndarray, values: np.ndarray, suite: str, last: int = 3) -> float:
    """OGBench: mean of the last three evaluations; D4RL: the final evaluation (FQL / MFQL protocol)."""
    order = np.argsort(steps)
    values = np.asarray(values, dtype=float)[order]
    return float(values[-last:].mean()) if suite == "ogbench" else float(values[-1])


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean over seeds (the learning curves' band); a single value has
    no interval (both ends are the value)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean - half, mean + half


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % of all values."""
    return float(stats.trim_mean(np.asarray(values, dtype=float).ravel(), 0.25))


def stratified_bootstrap_ci(scores: np.ndarray, statistic, reps: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float, float]:
    """Point estimate and percentile CI of ``statistic`` over a [runs, tasks] score matrix, resampling runs
    with replacement independently within each task (rliable's stratified bootstrap). NaNs (missing
    runs) are dropped task by task."""
    rng = np.random.default_rng(seed)
    columns = [col[~np.isnan(col)] for col in np.asarray(scores, dtype=float).T]
    columns = [c for c in columns if len(c)]
    point = statistic(np.concatenate(columns))
    draws = np.empty(reps)
    for i in range(reps):
        draws[i] = statistic(np.concatenate([rng.choice(c, size=len(c), replace=True) for c in columns]))
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(point), float(lo), float(hi)


def welch_p_value(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int) -> float:
    """Two-sided Welch t-test from summary statistics (each side's spread and seed count)."""
    if n_a < 2 or n_b < 2:
        return float("nan")
    std_a, std_b = max(std_a, 1e-9), max(std_b, 1e-9)  # a reported "+-0" still has some spread
    return float(stats.ttest_ind_from_stats(mean_a, std_a, n_a, mean_b, std_b, n_b, equal_var=False).pvalue)
