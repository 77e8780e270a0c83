"""Exclusion rules: the 2017 accuracy rule, timeouts, too-fast responses, practice; reported."""

import numpy as np
import pandas as pd
import pytest

from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.load import load_trials
from analysis.viewing import overview_rows, viewing_summary
from suite.errors import InputError
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


# -- the stimulus angle (stimulus_deg, an optional column) ------------------------------------

def _with_angles(angles: dict) -> pd.DataFrame:
    """Synthetic humans (+ a model) with each participant's stimulus_deg (None: not recorded)."""
    df = with_analysis_columns(synthetic_trials(n_humans=len(angles), n_images=110,
                                                models={"net": (10, 0.2)}))
    df["stimulus_deg"] = df["observer_id"].map(angles).astype(float)
    return df


def test_participants_outside_the_angle_range_or_without_one_are_excluded():
    df = _with_angles({"synthetic-00": 8.0, "synthetic-01": 5.2, "synthetic-02": 11.4,
                       "synthetic-03": None})
    kept, report = apply_exclusions(df, ExclusionRules(stimulus_deg_range=(6.0, 10.0)))
    reasons = dict(zip(report.excluded["observer_id"], report.excluded["reasons"], strict=True))
    assert reasons == {"synthetic-01": "stimulus angle outside 6–10°",
                       "synthetic-02": "stimulus angle outside 6–10°",
                       "synthetic-03": "no stimulus angle recorded"}
    assert set(kept["observer_id"]) == {"synthetic-00", "net"}  # models have no angle: exempt
    assert "2 for a stimulus angle outside the range asked for (stimulus angle outside 6–10°); " \
        "1 for no recorded stimulus angle (a range was asked for)" in report.headline()
    assert report.summary()["rules"]["stimulus_deg_range"] == (6.0, 10.0)
    _, off = apply_exclusions(df)  # the rule is off by default
    assert off.excluded.empty and "stimulus_deg" not in off.observers


def test_an_angle_on_the_range_edge_is_kept():
    df = _with_angles({"synthetic-00": 6.0, "synthetic-01": 10.0})
    _, report = apply_exclusions(df, ExclusionRules(stimulus_deg_range=(6.0, 10.0)))
    assert report.excluded.empty
    with pytest.raises(Exception, match="0 < LOW <= HIGH"):
        ExclusionRules(stimulus_deg_range=(10.0, 6.0))


def test_the_report_states_the_angle_or_its_range():
    same = _with_angles({"synthetic-00": 8.0056, "synthetic-01": 8.0056})
    assert overview_rows(same) == [("Stimulus size",
                                    "8.01° of visual angle for all 2 participant(s)")]
    spread = _with_angles({"synthetic-00": 5.0, "synthetic-01": 8.0, "synthetic-02": 11.0,
                           "synthetic-03": None})
    assert overview_rows(spread) == [("Stimulus size", "5.00–11.00° of visual angle across 3 "
                                      "participants (median 8.00°); not recorded for 1")]
    none = with_analysis_columns(synthetic_trials(n_humans=2, n_images=22))
    assert "not recorded" in overview_rows(none)[0][1]
    assert viewing_summary(spread)["without_angle"] == 1


def test_stimulus_deg_is_read_as_a_number_and_a_bad_cell_is_named(tmp_path):
    df = synthetic_trials(n_humans=1, n_images=22)
    df["stimulus_deg"] = 8.0056
    df.loc[3, "stimulus_deg"] = np.nan
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    loaded = load_trials([path])
    assert loaded["stimulus_deg"].dtype.kind == "f" and loaded["stimulus_deg"].isna().sum() == 1
    assert loaded["stimulus_deg"].max() == 8.0056
    df["stimulus_deg"] = df["stimulus_deg"].astype(object)
    df.loc[5, "stimulus_deg"] = "8 deg"
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match="line 7, column stimulus_deg: '8 deg' is not a number"):
        load_trials([path])


def test_report_option_is_parsed_and_checked(capsys):
    import argparse

    from analysis import report

    parser = argparse.ArgumentParser(prog="report")
    report.add_arguments(parser)
    args = parser.parse_args(["--trials", "t.csv", "--out", "o", "--stimulus-deg-range", "6", "10"])
    assert args.stimulus_deg_range == [6.0, 10.0]
    with pytest.raises(SystemExit):
        parser.parse_args(["--trials", "t.csv", "--out", "o", "--stimulus-deg-range", "0", "10"])
    assert "--stimulus-deg-range" in capsys.readouterr().err


def test_the_report_page_states_the_angle_range_and_the_angle_exclusion(tmp_path):
    from analysis.report import render_report

    df = synthetic_trials(n_humans=4, n_images=44)
    df["stimulus_deg"] = df["observer_id"].map({"synthetic-00": 8.0, "synthetic-01": 7.5,
                                                "synthetic-02": 8.5, "synthetic-03": 12.0})
    df.to_csv(tmp_path / "t.csv", index=False)
    said = []
    page = render_report([tmp_path / "t.csv"], tmp_path / "report", n_boot=5, statistics=False,
                         rules=ExclusionRules(stimulus_deg_range=(6.0, 10.0)), say=said.append)
    html = page.read_text()
    assert ("<tr><th>Stimulus size</th><td>7.50–8.50° of visual angle across 3 participants "
            "(median 8.00°)</td></tr>") in html
    assert "1 for a stimulus angle outside the range asked for" in said[0]
