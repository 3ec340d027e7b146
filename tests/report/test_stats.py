import numpy as np
import pytest

from mfql.report.stats import iqm, run_score, stratified_bootstrap_ci, welch_p_value


def test_run_score_follows_the_protocol():
    steps = np.array([300, 0, 100, 200])  # unordered on purpose
    values = np.array([40.0, 0.0, 10.0, 20.0])
    assert run_score(steps, values, "ogbench") == pytest.approx((10 + 20 + 40) / 3)  # last three evaluations
    assert run_score(steps, values, "d4rl") == 40.0  # final evaluation


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert iqm(np.array([0.0, 1, 1, 1, 1, 1, 1, 100])) == 1.0


def test_stratified_bootstrap_is_seeded_and_resamples_within_tasks():
    rng = np.random.default_rng(0)
    scores = np.column_stack([rng.normal(10, 1, 8), rng.normal(90, 1, 8)])  # [runs, tasks]
    a = stratified_bootstrap_ci(scores, np.mean, reps=500, seed=3)
    b = stratified_bootstrap_ci(scores, np.mean, reps=500, seed=3)
    assert a == b and a[1] < a[0] < a[2]
    # resampling within each task keeps each task's weight: the mean stays near 50 with a narrow CI
    assert a[2] - a[1] < 2.0 and abs(a[0] - 50) < 1.0
    with_missing = scores.copy()
    with_missing[0, 0] = np.nan
    point, _, _ = stratified_bootstrap_ci(with_missing, np.mean, reps=50, seed=0)
    assert point == pytest.approx(np.nanmean(with_missing))


def test_welch_p_value():
    assert welch_p_value(50, 5, 8, 50, 5, 8) == pytest.approx(1.0)
    assert welch_p_value(80, 2, 8, 50, 2, 8) < 1e-10
    assert np.isnan(welch_p_value(50, 5, 1, 50, 5, 8))


def test_t_interval_is_the_student_t_band_of_the_mean():
    from scipy import stats as sps

    from mfql.report.stats import t_interval

    values = np.array([0.0, 10.0, 20.0])
    low, high = t_interval(values)
    half = sps.t.ppf(0.975, 2) * 10.0 / np.sqrt(3)  # sd 10, n 3
    assert np.isclose(low, 10.0 - half) and np.isclose(high, 10.0 + half) and np.isclose(half, 24.84, atol=0.01)
    assert t_interval(np.array([5.0])) == (5.0, 5.0)
