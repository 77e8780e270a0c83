"""Curves: Wilson intervals against statsmodels, pooled curves, count matrices."""

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from analysis.curves import accuracy_curves, count_matrix, pooled_curve, wilson_interval
from analysis.load import load_trials


@pytest.mark.parametrize("confidence", [0.68, 0.95, 0.99])
def test_wilson_agrees_with_statsmodels(confidence):
    n = np.array([1, 5, 18, 18, 18, 80, 160, 1000])
    k = np.array([0, 5, 0, 9, 17, 41, 150, 999])
    lo, hi = wilson_interval(k, n, confidence)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-12)


def test_curves_count_real_trials_per_observer_and_level(mvh_raw):
    df = load_trials([mvh_raw / "contrast"])
    curves = accuracy_curves(df)
    assert len(curves) == 4 * 8
    assert curves["n_trials"].eq(160).all()
    one = df[(df["observer_id"] == "subject-02") & (df["level"] == 10)]
    row = curves[(curves["observer_id"] == "subject-02") & (curves["level"] == 10)]
    assert row["accuracy"].item() == pytest.approx(one["correct"].mean())
    assert (curves["ci_low"] <= curves["accuracy"]).all()
    assert (curves["accuracy"] <= curves["ci_high"]).all()


def test_pooled_curve_sums_observers(mvh_raw):
    curves = accuracy_curves(load_trials([mvh_raw / "uniform-noise"]))
    pooled = pooled_curve(curves)
    assert pooled["n_trials"].eq(640).all()
    assert pooled["n_observers"].eq(4).all()
    # pooled accuracy falls with noise: the real curve goes from ~0.8 to ~0.07
    assert pooled["accuracy"].iloc[0] > 0.7 and pooled["accuracy"].iloc[-1] < 0.15


def test_count_matrix_shapes_and_totals(mvh_raw):
    curves = accuracy_curves(load_trials([mvh_raw / "contrast"]))
    cm = count_matrix(curves, "contrast")
    assert cm.n_correct.shape == (4, 8) and cm.levels[0] == 1 and cm.levels[-1] == 100
    assert cm.n_correct.sum() == curves["n_correct"].sum()
    assert cm.guess == pytest.approx(1 / 16) and cm.increasing
