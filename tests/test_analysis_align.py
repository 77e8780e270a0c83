"""Alignment scores: the model curve matters (paradigm §1 draft bug), intervals shrink with data."""

import numpy as np
import pytest

from analysis.align import align
from analysis.normalize import normalize
from tests.support.synthetic_trials import synthetic_trials, with_analysis_columns

MODELS = {"matched": (10.0, 0.25), "shifted": (40.0, 0.25), "steep": (10.0, 0.06),
          "shallow": (10.0, 0.6)}


@pytest.fixture(scope="module")
def scored():
    df = with_analysis_columns(synthetic_trials(n_humans=30, n_images=220, models=MODELS, seed=4))
    return align(df, n_boot=200, seed=0).scores.set_index("model_name")


def test_model_matching_humans_scores_best(scored):
    best = scored["neg_log_mse"].idxmax()
    assert best == "matched"
    assert scored.loc["matched", "neg_log_mse"] > scored.loc["shifted", "neg_log_mse"] + 1.0
    assert scored.loc["matched", "correlation"] > scored.loc["shifted", "correlation"]
    assert scored.loc["shifted", "threshold_ratio"] == pytest.approx(4.0, rel=0.35)
    assert scored.loc["matched", "threshold_ratio"] == pytest.approx(1.0, rel=0.25)


def test_different_model_curves_never_share_a_score(scored):
    # the authors' draft gave every model the same −log MSE; ours must not
    for metric in ("neg_log_mse", "correlation", "threshold_ratio", "error_consistency"):
        assert scored[metric].nunique() == len(MODELS), metric


def test_intervals_contain_point_estimates(scored):
    for metric in ("neg_log_mse", "threshold_ratio"):
        assert (scored[f"{metric}_low"] <= scored[metric]).all()
        assert (scored[metric] <= scored[f"{metric}_high"]).all()


def test_error_consistency_detects_shared_errors():
    df = with_analysis_columns(synthetic_trials(n_humans=12, n_images=220,
                                                models={"twin": (10, 0.25), "other": (10, 0.25)}))
    # "twin" copies the humans' majority answer on each stimulus: errors agree with theirs
    humans = df[df["observer_type"] == "human"]
    majority = humans.groupby(["image_id", "level_index"])["correct"].mean().round()
    twin = df["model_name"] == "twin"
    keys = list(zip(df.loc[twin, "image_id"], df.loc[twin, "level_index"], strict=True))
    df.loc[twin, "correct"] = [int(majority.get(k, 1)) for k in keys]
    s = align(df, n_boot=100).scores.set_index("model_name")
    assert s.loc["twin", "error_consistency"] > 0.2
    assert abs(s.loc["other", "error_consistency"]) < 0.1
    assert s.loc["twin", "error_consistency_low"] > s.loc["other", "error_consistency_high"]


def test_intervals_shrink_with_more_participants_and_images():
    widths = []
    for n_humans, n_images in ((8, 66), (60, 440)):
        df = with_analysis_columns(synthetic_trials(n_humans=n_humans, n_images=n_images,
                                                    models={"net": (14.0, 0.3)}, seed=n_humans))
        s = align(df, n_boot=200, resample=("participants", "images")).scores.iloc[0]
        widths.append({m: s[f"{m}_high"] - s[f"{m}_low"]
                       for m in ("neg_log_mse", "threshold_ratio", "error_consistency")})
    for metric in widths[0]:
        assert widths[1][metric] < widths[0][metric], metric


def test_normalizations():
    acc = np.array([[0.5, 0.6, 0.8, 0.9], [0.6, 0.65, 0.7, 0.7]])
    chance = normalize(acc, "chance", guess=0.5)
    np.testing.assert_allclose(chance[0], [0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(chance[1], [0.5, 0.75, 1.0, 1.0])
    minmax = normalize(acc, "minmax")
    np.testing.assert_allclose(minmax[1], [0, 0.5, 1.0, 1.0])
    assert np.isnan(normalize([0.5, 0.5], "chance", 0.5)).all()
    np.testing.assert_allclose(normalize([1 / 16, 0.5, 1.0], "chance", 1 / 16)[1],
                               (0.5 - 1 / 16) / (1 - 1 / 16))
