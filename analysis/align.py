"""Decision alignment of each model with the human curve, with bootstrap intervals.

Scores, per model, against the reference (human) observers of one dataset:

- ``neg_log_mse`` — −log of the mean squared difference between the model's normalized
  curve and the humans' normalized curve across levels (the model curve is compared, unlike
  the authors' draft; paradigm §1);
- ``correlation`` — Pearson correlation of the two normalized curves across levels;
- ``threshold_ratio`` — the model's fitted threshold over the humans' (in level units);
- ``error_consistency`` — Cohen's κ of trial-level correctness on the stimuli both saw
  (Geirhos et al. 2020), the **pooled** estimator: per level, the humans' trials are pooled
  into one observer and one κ is computed against the model; then the mean over levels;
- ``error_consistency_pairwise`` — Geirhos et al.'s own estimator, as model-vs-human reports
  it: κ per human–model pair on the trials they share at a level, the mean over the pairs
  whose κ is defined, then the mean over levels.

Pooling is the default the report leads with: a participant shares only ~n_images/n_levels
trials with a model per level, so one pair's κ rests on a handful of trials (and is undefined
when the person got every shared trial right); the pooled κ uses every human trial at once.

One bootstrap resamples participants, images and levels together (weights drawn with
replacement); the point estimate is the same computation with every weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.bootstrap import DEFAULT_N_BOOT, percentile_interval, resample_weights
from analysis.fit import fit_psychometric
from analysis.load import DATASETS, SUITE_DATASET
from analysis.normalize import DEFAULT_METHOD, normalize
from suite.errors import InputError

#: The smallest MSE a score uses: curves closer than this (normalized curves within 0.001 of
#: each other at every level, finer than any count of trials resolves) agree perfectly, and
#: −log MSE is capped at −log(1e-6) ≈ 13.8 instead of +inf. Resamples at the cap are counted
#: (``neg_log_mse_perfect_resamples``) and a point estimate at the cap is flagged
#: (``neg_log_mse_perfect``).
MSE_FLOOR = 1e-6
NEG_LOG_MSE_CAP = float(-np.log(MSE_FLOOR))

METRICS = ("neg_log_mse", "correlation", "threshold_ratio", "error_consistency",
           "error_consistency_pairwise")
RESAMPLED = ("participants", "images", "levels")


@dataclass(frozen=True)
class Alignment:
    """Scores per model (with intervals) and the normalized curves they compare.

    ``resamples`` maps each metric to its (1 + n_boot, n_models) array: row 0 the point
    estimate, then every resample, columns in the order of ``scores`` — the same resamples
    for every model, so differences between models are paired (``analysis.stats``).
    """

    scores: pd.DataFrame
    curves: pd.DataFrame
    reference: str
    normalization: str
    n_boot: int
    resamples: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class _Cube:
    """Trials of a group of observers as (observer, image, level) arrays."""

    names: list
    correct: np.ndarray
    seen: np.ndarray


def _cube(rows: pd.DataFrame, by: str, images: pd.Index, levels: np.ndarray) -> _Cube:
    names = list(pd.unique(rows[by]))
    o = pd.Index(names).get_indexer(rows[by])
    i = images.get_indexer(rows["image_id"])
    lvl = np.searchsorted(levels, rows["level"].to_numpy(dtype=float))
    shape = (len(names), len(images), len(levels))
    correct, seen = np.zeros(shape), np.zeros(shape)
    np.add.at(seen, (o, i, lvl), 1.0)
    np.add.at(correct, (o, i, lvl), rows["correct"].to_numpy(dtype=float))
    return _Cube(names, correct, seen)


def _weighted_sum(w_img: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Σ_i w_img[r, i]·x[..., i, l] → (R, ..., L), as one matrix product."""
    lead, n_img, n_lvl = x.shape[:-2], x.shape[-2], x.shape[-1]
    flat = np.moveaxis(x, -2, 0).reshape(n_img, -1)
    return (w_img @ flat).reshape(w_img.shape[0], *lead, n_lvl)


def _weighted_corr(a, b, w):
    """Weighted Pearson correlation along the last axis."""
    sw = w.sum(-1, keepdims=True)
    # a resample with no weighted level has no correlation: NaN, counted by the caller
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = (a * w).sum(-1, keepdims=True) / sw, (b * w).sum(-1, keepdims=True) / sw
        cov = (w * (a - ma) * (b - mb)).sum(-1)
        va, vb = (w * (a - ma) ** 2).sum(-1), (w * (b - mb) ** 2).sum(-1)
        return cov / np.sqrt(va * vb)


def _kappa(k_h, k_m, both, total):
    """Cohen's κ of two observers' correctness from weighted counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p_h, p_m = k_h / total, k_m / total
        agree = (total - k_h - k_m + 2.0 * both) / total
        expected = p_h * p_m + (1.0 - p_h) * (1.0 - p_m)
        return (agree - expected) / (1.0 - expected)


def _pick_dataset(df: pd.DataFrame, dataset: str | None) -> str:
    present = list(pd.unique(df["dataset"]))
    if dataset is not None:
        if dataset not in present:
            raise InputError(f"dataset {dataset!r} not in the trials; have {present}")
        return dataset
    if SUITE_DATASET in present:
        return SUITE_DATASET
    if len(present) == 1:
        return present[0]
    raise InputError(f"trials hold several datasets {present}; name one with dataset=")


def reference_type(df: pd.DataFrame) -> str:
    """``human`` when real humans are present, else ``simulated`` (labelled as such)."""
    types = set(df["observer_type"])
    if "human" in types:
        return "human"
    if "simulated" in types:
        return "simulated"
    raise InputError("no human or simulated observers to compare models with")


def align(trials: pd.DataFrame, *, dataset: str | None = None, reference: str | None = None,
          normalization: str = DEFAULT_METHOD, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
          confidence: float = 0.95, sigmoid: str = "logistic",
          resample: tuple[str, ...] = RESAMPLED) -> Alignment:
    """Alignment of every model with the reference observers, bootstrapped over
    participants, images and levels (n_boot resamples)."""
    dataset = _pick_dataset(trials, dataset)
    df = trials[(trials["dataset"] == dataset) & trials["level"].notna()]
    reference = reference or reference_type(df)
    people = df[df["observer_type"] == reference]
    models = df[df["observer_type"] == "model"]
    if people.empty:
        raise InputError(f"no {reference} observers in dataset {dataset!r}")
    if models.empty:
        raise InputError(f"no model observers in dataset {dataset!r}: add the models' trial "
                         "tables (python -m models observe) to --trials")
    info = DATASETS[dataset]
    levels = np.sort(pd.unique(df["level"].astype(float)))
    images = pd.Index(pd.unique(df["image_id"]))
    H = _cube(people, "observer_id", images, levels)
    M = _cube(models, "model_name", images, levels)

    rng = np.random.default_rng(seed)
    ones = lambda n: np.ones((1, n))  # noqa: E731 — row 0 is the point estimate
    unknown = set(resample) - set(RESAMPLED)
    if unknown:
        raise InputError(f"cannot resample {sorted(unknown)}; choose from {RESAMPLED}")

    def weights(what: str, n: int) -> np.ndarray:
        draws = resample_weights(n, n_boot, rng) if what in resample else np.ones((n_boot, n))
        return np.vstack([ones(n), draws])

    w_obs = weights("participants", len(H.names))
    w_img = weights("images", len(images))
    w_lvl = weights("levels", len(levels))

    # Counts per resample: humans pooled over weighted participants (R, L); models (R, M, L).
    kh = np.einsum("ro,rol->rl", w_obs, _weighted_sum(w_img, H.correct))
    nh = np.einsum("ro,rol->rl", w_obs, _weighted_sum(w_img, H.seen))
    km, nm = _weighted_sum(w_img, M.correct), _weighted_sum(w_img, M.seen)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_h, acc_m = kh / nh, km / nm
    # The pooled human curve is normalized once: each participant's own maximum, over
    # ~18 trials per level, is biased upward and would shrink their normalized curve.
    norm_h = normalize(acc_h, normalization, info.guess)
    norm_m = normalize(acc_m, normalization, info.guess)

    wl = w_lvl * (nh > 0)  # a level no resampled human saw cannot be compared
    diff2 = (norm_m - norm_h[:, None, :]) ** 2
    wlm = wl[:, None, :] * np.isfinite(diff2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = np.nansum(np.where(wlm > 0, diff2, 0.0) * wlm, -1) / wlm.sum(-1)
        score = {"neg_log_mse": -np.log(np.maximum(mse, MSE_FLOOR))}
    score["correlation"] = _weighted_corr(np.nan_to_num(norm_m), np.nan_to_num(norm_h)[:, None],
                                          wlm)

    fit_kw = dict(sigmoid=sigmoid, guess=info.guess, scale=info.fit_scale,
                  increasing=info.increasing)
    th = fit_psychometric(levels, kh * wl, nh * wl, **fit_kw).threshold
    tm = fit_psychometric(levels, km * wl[:, None], nm * wl[:, None], **fit_kw).threshold
    score["threshold_ratio"] = tm / th[:, None]

    # Error consistency on shared stimuli, per level (as Geirhos et al. 2020 do per
    # condition, so that agreement explained by the level alone does not count), pooling
    # the weighted human trials of a level, then averaged over the weighted levels.
    hc, hs = H.correct[:, None], H.seen[:, None]            # (O, 1, I, L)
    ms = M.seen[None] > 0                                   # (1, M, I, L)
    mp = np.where(ms, M.correct[None] / np.maximum(M.seen[None], 1), 0.0)
    parts = [hs * ms, hc * ms, hs * mp, hc * mp]            # total, k_h, k_m, both
    total, k_h, k_m, both = (np.einsum("ro,roml->rml", w_obs, _weighted_sum(w_img, x))
                             for x in parts)
    kappa = _kappa(k_h, k_m, both, total)                   # (R, M, L)
    valid = np.isfinite(kappa) * w_lvl[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        score["error_consistency"] = (np.nan_to_num(kappa) * valid).sum(-1) / valid.sum(-1)
    score["error_consistency_pairwise"], pairs_defined = _pairwise_kappa(H, M, w_obs, w_img,
                                                                         w_lvl)

    rows = []
    for j, name in enumerate(M.names):
        row = {"model_name": name, "dataset": dataset, "reference": reference,
               "normalization": normalization, "n_boot": n_boot,
               "resampled": "+".join(resample)}
        for metric in METRICS:
            s = score[metric][:, j]
            lo, hi = percentile_interval(s[1:], confidence)
            row.update({metric: s[0], f"{metric}_low": lo, f"{metric}_high": hi,
                        f"{metric}_sd": _sd(s[1:]),
                        f"{metric}_nan_resamples": int(np.isnan(s[1:]).sum())})
        at_cap = score["neg_log_mse"][:, j] >= NEG_LOG_MSE_CAP
        row["neg_log_mse_perfect"] = bool(at_cap[0])
        row["neg_log_mse_perfect_resamples"] = int(at_cap[1:].sum())
        row["error_consistency_pairwise_pairs"] = int(pairs_defined[j])
        rows.append(row)
    return Alignment(scores=pd.DataFrame(rows),
                     curves=_curve_table(levels, norm_h, norm_m, reference, M.names,
                                         confidence),
                     reference=reference, normalization=normalization, n_boot=n_boot,
                     resamples={m: score[m] for m in METRICS})


def _pairwise_kappa(H: _Cube, M: _Cube, w_obs, w_img, w_lvl) -> tuple[np.ndarray, np.ndarray]:
    """Geirhos et al.'s error consistency per resample and model, (R, M): κ of each
    (human, model) pair on the stimuli they share at a level, the weighted mean over the
    pairs whose κ is defined (c_exp < 1), then over levels. Also the number of (human,
    level) pairs with a defined κ in the point estimate, per model. One model at a time:
    the (R, 4, O, L) counts of all models at once would not fit at the paper's scale."""
    out = np.empty((w_img.shape[0], len(M.names)))
    defined = np.zeros(len(M.names), dtype=int)
    for j in range(len(M.names)):
        ms = M.seen[j] > 0                                              # (I, L)
        mp = np.where(ms, M.correct[j] / np.maximum(M.seen[j], 1), 0.0)
        stack = np.stack([H.seen * ms, H.correct * ms, H.seen * mp, H.correct * mp])
        total, k_h, k_m, both = np.moveaxis(_weighted_sum(w_img, stack), 1, 0)  # (R, O, L)
        kappa = _kappa(k_h, k_m, both, total)
        ok = np.isfinite(kappa)
        defined[j] = int(ok[0].sum())
        wk = ok * w_obs[:, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_level = (np.where(ok, kappa, 0.0) * wk).sum(1) / wk.sum(1)   # (R, L)
            lv = np.isfinite(per_level) * w_lvl
            out[:, j] = (np.nan_to_num(per_level) * lv).sum(-1) / lv.sum(-1)
    return out, defined


def _sd(samples: np.ndarray) -> float:
    """Standard deviation of the finite resamples; NaN (silently) when fewer than two."""
    finite = samples[np.isfinite(samples)]
    return float(np.std(finite)) if finite.size >= 2 else float("nan")


def _curve_table(levels, norm_h, norm_m, reference, model_names, confidence) -> pd.DataFrame:
    """Normalized curves with bootstrap intervals, long format, one row per observer-level."""
    frames = []
    groups = [(f"{reference} (pooled)", reference, norm_h)] + [
        (name, "model", norm_m[:, j]) for j, name in enumerate(model_names)]
    for label, kind, arr in groups:
        lo, hi = percentile_interval(arr[1:], confidence)
        frames.append(pd.DataFrame({"observer": label, "observer_type": kind, "level": levels,
                                    "normalized": arr[0], "low": lo, "high": hi}))
    return pd.concat(frames, ignore_index=True)


def alignment_scores(trials: pd.DataFrame, **options) -> pd.DataFrame:
    """One row per model: each alignment metric with its bootstrap interval and sd."""
    return align(trials, **options).scores
