"""Trial-by-trial agreement of each model with the humans: error consistency per human–model
pair, and which images each finds hard.

``pairwise_kappa`` is Geirhos et al.'s (2020) estimator as model-vs-human reports it: Cohen's
κ of correctness for each (human, model) pair on the stimuli — the same image at the same
level — both saw, κ = (c_obs − c_exp) / (1 − c_exp) with c_exp = p₁p₂ + (1 − p₁)(1 − p₂);
``kappa_summary`` averages it over the pairs of a level, then over levels, and equals
``analysis.align``'s ``error_consistency_pairwise`` point estimate. The pooled estimator
(``error_consistency``) is computed in ``analysis.align`` only.

``image_difficulty`` gives per-image accuracy for the humans and each model on matched
stimuli, and the Spearman rank correlation between them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.align import _pick_dataset, reference_type
from suite.errors import InputError


def people_and_models(trials: pd.DataFrame, dataset: str | None, reference: str | None,
                      purpose: str = "error consistency and image difficulty"):
    """(dataset, reference type, the reference observers' trials, the models' trials)."""
    dataset = _pick_dataset(trials, dataset)
    df = trials[(trials["dataset"] == dataset) & trials["level"].notna()]
    reference = reference or reference_type(df)
    people = df[df["observer_type"] == reference]
    models = df[df["observer_type"] == "model"]
    if people.empty or models.empty:
        raise InputError(f"dataset {dataset!r} needs both {reference} and model trials for "
                         f"{purpose}")
    return dataset, reference, people, models


def _model_cells(models: pd.DataFrame) -> pd.DataFrame:
    """Each model's correctness per stimulus (image, level): the mean over its trials there."""
    return (models.groupby(["model_name", "image_id", "level"], sort=True)["correct"].mean()
            .rename("model_correct").reset_index())


def _matched(people: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Every human trial beside each model's correctness on the same stimulus (inner join)."""
    h = people[["observer_id", "image_id", "level", "correct"]].rename(
        columns={"correct": "human_correct"})
    return h.merge(_model_cells(models), on=["image_id", "level"], how="inner")


def pairwise_kappa(trials: pd.DataFrame, *, dataset: str | None = None,
                   reference: str | None = None) -> pd.DataFrame:
    """κ per (model, human, level) on their shared stimuli: n_shared, p_human, p_model,
    c_obs, c_exp, kappa (NaN when c_exp = 1: both right, or both wrong, on every one)."""
    dataset, reference, people, models = people_and_models(trials, dataset, reference)
    m = _matched(people, models)
    h, p = m["human_correct"].astype(float), m["model_correct"].astype(float)
    m = m.assign(both=h * p, agree=h * p + (1.0 - h) * (1.0 - p))
    g = m.groupby(["model_name", "observer_id", "level"], sort=True)
    out = g.agg(n_shared=("human_correct", "size"), p_human=("human_correct", "mean"),
                p_model=("model_correct", "mean"), c_obs=("agree", "mean")).reset_index()
    out["c_exp"] = (out["p_human"] * out["p_model"]
                    + (1.0 - out["p_human"]) * (1.0 - out["p_model"]))
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = (out["c_obs"] - out["c_exp"]) / (1.0 - out["c_exp"])
    out["kappa"] = np.where(out["c_exp"] < 1.0 - 1e-12, kappa, np.nan)
    out.insert(0, "dataset", dataset)
    out.insert(1, "reference", reference)
    return out


def kappa_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per model: the mean κ over the defined pairs of each level, then over levels
    (``error_consistency_pairwise``), with the pair counts behind it."""
    defined = pairs[np.isfinite(pairs["kappa"])]
    per_level = defined.groupby(["dataset", "model_name", "level"])["kappa"].mean()
    summary = per_level.groupby(["dataset", "model_name"]).agg(
        error_consistency_pairwise="mean", n_levels="size").reset_index()
    counts = pairs.groupby(["dataset", "model_name"]).agg(
        n_pairs=("kappa", "size"), n_pairs_defined=("kappa", lambda k: int(np.isfinite(k).sum())),
        median_shared_trials=("n_shared", "median")).reset_index()
    return counts.merge(summary, on=["dataset", "model_name"], how="left")


def image_difficulty(trials: pd.DataFrame, *, dataset: str | None = None,
                     reference: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Which images humans and models find hard.

    Returns (per_image, correlation). ``per_image``: one row per (model, image) with the
    humans' accuracy on the image (all their trials of it) and the model's accuracy on the
    same stimuli (each human trial's image and level, so both are measured at the same
    levels). ``correlation``: per model, Spearman's ρ between the two across images, its p,
    and the number of images."""
    dataset, reference, people, models = people_and_models(trials, dataset, reference)
    m = _matched(people, models)
    per_image = m.groupby(["model_name", "image_id"], sort=True).agg(
        n_human_trials=("human_correct", "size"), human_accuracy=("human_correct", "mean"),
        model_accuracy=("model_correct", "mean")).reset_index()
    per_image.insert(0, "dataset", dataset)
    rows = []
    for name, part in per_image.groupby("model_name", sort=True):
        row = {"dataset": dataset, "reference": reference, "model_name": name,
               "n_images": len(part), "spearman_rho": np.nan, "spearman_p": np.nan}
        h, mo = part["human_accuracy"].to_numpy(), part["model_accuracy"].to_numpy()
        if len(part) >= 3 and np.ptp(h) > 0 and np.ptp(mo) > 0:
            res = stats.spearmanr(h, mo)
            row["spearman_rho"], row["spearman_p"] = float(res.statistic), float(res.pvalue)
        rows.append(row)
    return per_image, pd.DataFrame(rows)
