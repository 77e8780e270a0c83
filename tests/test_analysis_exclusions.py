"""Exclusion rules: the 2017 accuracy rule, timeouts, too-fast responses, practice; reported."""

import numpy as np
import pytest

from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.load import load_trials
from tests.support.synthetic_trials import synthetic_trials, with_analysis_columns


def test_2017_rule_drops_participant_at_chance_on_100_percent_images():
    df = with_analysis_columns(synthetic_trials(n_humans=4, n_images=110,
                                                models={"net": (10, 0.2)}))
    guesser = (df["observer_id"] == "synthetic-02") & (df["level_index"] == 10)
    df.loc[guesser, "correct"] = (np.arange(guesser.sum()) % 2 == 0).astype(int)  # 0.5 exactly
    kept, report = apply_exclusions(df)
    assert "synthetic-02" not in set(kept["observer_id"])
    assert set(report.excluded["observer_id"]) == {"synthetic-02"}
    assert "top accuracy" in report.excluded["reasons"].item()
    assert report.trials_dropped["excluded_observers"] == 110
    assert "net" in set(kept["observer_id"])  # models are never excluded by human rules


def test_timeouts_rule_and_trial_drop():
    df = with_analysis_columns(synthetic_trials(n_humans=3, n_images=110))
    slow = df["observer_id"] == "synthetic-01"
    idx = df.index[slow][:30]  # 30 of 110 = 27 % > 20 %
    df.loc[idx, ["timeout", "correct"]] = [1, 0]
    kept, report = apply_exclusions(df)
    assert list(report.excluded["observer_id"]) == ["synthetic-01"]
    assert "timeouts" in report.excluded["reasons"].item()
    assert report.trials_dropped["timeout"] == 30
    kept2, _ = apply_exclusions(df, ExclusionRules(max_timeout_fraction=None,
                                                   timeouts_as_errors=True))
    assert len(kept2) == len(df)


def test_fast_responses_dropped_and_fast_observer_excluded():
    df = with_analysis_columns(synthetic_trials(n_humans=3, n_images=110))
    df.loc[df.index[:5], "rt_ms"] = 90.0                       # synthetic-00: 5 fast trials
    fast_obs = df.index[df["observer_id"] == "synthetic-02"][:40]
    df.loc[fast_obs, "rt_ms"] = 60.0                           # 36 % fast
    kept, report = apply_exclusions(df)
    assert report.trials_dropped["too_fast"] == 45
    assert set(report.excluded["observer_id"]) == {"synthetic-02"}
    assert (kept["rt_ms"] >= 150).all()
    kept_all, rep_off = apply_exclusions(df, ExclusionRules(fast_rt_ms=None))
    assert rep_off.excluded.empty and len(kept_all) == len(df)


def test_real_observers_pass_and_na_responses_are_timeouts(mvh_raw):
    df = load_trials([mvh_raw / "contrast"])
    kept, report = apply_exclusions(df)
    assert report.excluded.empty
    assert report.trials_dropped["timeout"] == int(df["timeout"].sum()) > 0
    summary = report.summary()
    assert summary["observers_kept"] == 4 and summary["rules"]["min_top_accuracy"] == 0.5


def test_rules_remove_everything_raises():
    df = with_analysis_columns(synthetic_trials(n_humans=1, n_images=22))
    with pytest.raises(Exception, match="removed every trial"):
        apply_exclusions(df, ExclusionRules(min_top_accuracy=1.0))
