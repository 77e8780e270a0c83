"""Error consistency, both estimators, against a hand computation on model-vs-human's contrast
experiment (subject-04 plays the "model"); per-image difficulty on latent image difficulty."""

import numpy as np
import pandas as pd
import pytest

from analysis.align import align
from analysis.consistency import image_difficulty, kappa_summary, pairwise_kappa
from analysis.load import load_trials


def kappa_by_hand(h, m):
    """Cohen's κ of two 0/1 lists, spelled out."""
    n = len(h)
    c_obs = sum(1 for a, b in zip(h, m, strict=True) if a == b) / n
    p1, p2 = sum(h) / n, sum(m) / n
    c_exp = p1 * p2 + (1 - p1) * (1 - p2)
    return (c_obs - c_exp) / (1 - c_exp)


@pytest.fixture(scope="module")
def contrast(mvh_raw):
    df = load_trials(mvh_raw / "contrast")
    twin = df["observer_id"] == "subject-04"
    df.loc[twin, "observer_type"] = "model"
    df.loc[twin, "model_name"] = "subject-04"
    return df


def test_pairwise_kappa_equals_the_hand_computation(contrast):
    model = {(r.image_id, r.level): r.correct
             for r in contrast[contrast["model_name"] == "subject-04"].itertuples()}
    humans = contrast[contrast["observer_type"] == "human"]
    table = pairwise_kappa(contrast).set_index(["observer_id", "level"])
    per_level = {}
    for (person, level), rows in humans.groupby(["observer_id", "level"]):
        h = [int(c) for c in rows["correct"]]
        m = [int(model[(i, level)]) for i in rows["image_id"]]
        k = kappa_by_hand(h, m)
        assert table.loc[(person, level), "kappa"] == pytest.approx(k, abs=1e-12)
        assert table.loc[(person, level), "n_shared"] == len(h) == 160
        per_level.setdefault(level, []).append(k)
    assert len(per_level) == 8 and all(len(v) == 3 for v in per_level.values())
    geirhos = np.mean([np.mean(v) for v in per_level.values()])
    summary = kappa_summary(pairwise_kappa(contrast)).iloc[0]
    assert summary["error_consistency_pairwise"] == pytest.approx(geirhos, abs=1e-12)
    # the bootstrap's point estimate is the same number
    point = align(contrast, n_boot=2).scores.iloc[0]
    assert point["error_consistency_pairwise"] == pytest.approx(geirhos, abs=1e-12)
    assert point["error_consistency_pairwise_pairs"] == 24
    # people agree with each other beyond chance on which images they get wrong
    assert 0.2 < geirhos < 0.6


def test_pooled_kappa_equals_the_hand_computation(contrast):
    # the pooled estimator: the three humans' trials of a level as one observer
    model = {(r.image_id, r.level): r.correct
             for r in contrast[contrast["model_name"] == "subject-04"].itertuples()}
    humans = contrast[contrast["observer_type"] == "human"]
    pooled = []
    for level, rows in humans.groupby("level"):
        h = [int(c) for c in rows["correct"]]
        m = [int(model[(i, level)]) for i in rows["image_id"]]
        pooled.append(kappa_by_hand(h, m))
    point = align(contrast, n_boot=2).scores.iloc[0]
    assert point["error_consistency"] == pytest.approx(np.mean(pooled), abs=1e-12)
    # two estimators, two numbers (close here: every person saw the same images)
    assert point["error_consistency"] != point["error_consistency_pairwise"]


def test_undefined_pairs_are_left_out(contrast):
    df = contrast.copy()
    top = df["level"] == 100.0
    df.loc[top & (df["observer_id"] == "subject-01"), "correct"] = 1
    df.loc[top & (df["model_name"] == "subject-04"), "correct"] = 1
    table = pairwise_kappa(df).set_index(["observer_id", "level"])
    assert np.isnan(table.loc[("subject-01", 100.0), "kappa"])  # both always right: c_exp = 1
    assert np.isfinite(table.loc[("subject-02", 100.0), "kappa"])
    s = kappa_summary(pairwise_kappa(df)).iloc[0]
    assert s["n_pairs"] == 24 and s["n_pairs_defined"] == 23


def test_image_difficulty_rank_correlation():
    rng = np.random.default_rng(5)
    n_images, n_people, levels = 120, 12, np.array([10.0, 30.0, 100.0])
    ease = rng.normal(0, 3.0, n_images)       # an image hard for people is hard for "shared"
    rows = []
    for p in range(n_people):
        for i in range(n_images):
            lvl = levels[(i + p) % 3]
            q = 1 / (1 + np.exp(-(ease[i] + np.log10(lvl))))
            rows.append(("human", f"p{p}", np.nan, f"im{i}", lvl, int(rng.random() < q)))
    for name, e in (("shared", ease), ("unrelated", rng.normal(0, 3.0, n_images))):
        for i in range(n_images):
            for lvl in levels:
                q = 1 / (1 + np.exp(-(e[i] + np.log10(lvl))))
                rows.append(("model", name, name, f"im{i}", lvl, int(rng.random() < q)))
    df = pd.DataFrame(rows, columns=["observer_type", "observer_id", "model_name", "image_id",
                                     "level", "correct"])
    df["dataset"] = "animal-vs-non-animal"
    per_image, rho = image_difficulty(df)
    rho = rho.set_index("model_name")
    assert rho.loc["shared", "spearman_rho"] > 0.5 and rho.loc["shared", "spearman_p"] < 1e-6
    assert abs(rho.loc["unrelated", "spearman_rho"]) < 0.25
    assert (rho["n_images"] == n_images).all()
    # the model is measured on the humans' stimuli: image im0's levels as the people saw it
    im0 = per_image[(per_image["model_name"] == "shared") & (per_image["image_id"] == "im0")]
    assert im0["n_human_trials"].item() == n_people
    seen = df[(df["image_id"] == "im0") & (df["observer_type"] == "human")]["level"]
    model = df[(df["model_name"] == "shared") & (df["image_id"] == "im0")].set_index("level")
    assert im0["model_accuracy"].item() == pytest.approx(model.loc[seen, "correct"].mean())
