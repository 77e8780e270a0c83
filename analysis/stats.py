"""The statistics a reviewer asks for: goodness of fit, humans vs each model, model vs model.

- ``goodness_of_fit`` — per psychometric fit, the deviance and a parametric-bootstrap p:
  counts are simulated from the fitted curve itself, refit (all at once, ``analysis.fit``),
  and p is the share of simulated deviances at least as large as the observed one.
  Overdispersion (more spread than binomial noise around the curve) is flagged when that p is
  below ``GOF_ALPHA`` = 0.05; ``dispersion`` = deviance / mean simulated deviance says by how
  much (≈ 1 for a binomial observer; deviance / df is given too, but with ~18 trials per
  level the deviance is not χ²-distributed, which is why the flag uses the simulation).
- ``curve_difference`` — does a model's curve differ from the humans'? A binomial GLM
  (logit link, statsmodels) with one accuracy per level for the humans and one per level for
  the model; cluster-robust covariance with the humans' trials clustered by participant and
  the model's by image. The joint Wald test (W / q against F(q, participants − 1)) of
  "model − human = 0 at every level" (the group effect and the level × observer-type
  interaction together) gives ``p_curve``; the interaction alone (the shape, apart from one
  shift on the logit scale) ``p_shape``.
- ``compare_models`` — one model against another: the paired bootstrap difference of each
  alignment score (``analysis.align``'s resamples, the same for both models), its percentile
  interval and two-sided p, Holm-corrected across the pairs of each metric
  (``statsmodels.stats.multitest``).
- ``glmm_curve_difference`` — opt-in: the same comparison as a Bayesian binomial mixed model
  (``BinomialBayesMixedGLM.fit_vb``) with crossed random intercepts for participants and
  images; slow (about a minute per model at 50 000 trials), so its time is reported.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from analysis.align import METRICS, Alignment
from analysis.bootstrap import percentile_interval
from analysis.consistency import people_and_models
from analysis.curves import accuracy_curves, count_matrix
from analysis.fit import fit_psychometric
from suite.errors import InputError

GOF_ALPHA = 0.05
N_PARAMETERS = 3  # α, β, λ (γ is fixed at chance)
CORRECTION = "holm"


def deviance(n_correct, n_trials, p) -> np.ndarray:
    """Binomial deviance of counts (..., L) against probabilities p, summed over levels."""
    k, n, p = (np.asarray(v, dtype=float) for v in (n_correct, n_trials, p))
    with np.errstate(invalid="ignore", divide="ignore"):
        hit = np.where(k > 0, k * np.log(k / (n * p)), 0.0)
        miss = np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1.0 - p))), 0.0)
    return 2.0 * np.sum(np.where(n > 0, hit + miss, 0.0), axis=-1)


def goodness_of_fit(levels, n_correct, n_trials, *, n_sim: int = 1000, seed: int = 0,
                    alpha: float = GOF_ALPHA, **fit_options) -> pd.DataFrame:
    """Deviance and parametric-bootstrap goodness of fit of each observer's fit (O, L)."""
    if n_sim < 1:
        raise InputError(f"n_sim must be ≥ 1, got {n_sim}")
    levels = np.asarray(levels, dtype=float)
    k = np.atleast_2d(np.asarray(n_correct, dtype=float))
    n = np.atleast_2d(np.asarray(n_trials, dtype=float))
    if np.any(np.abs(n - np.rint(n)) > 1e-9):
        raise InputError("goodness of fit needs whole trial counts")
    point = fit_psychometric(levels, k, n, **fit_options)
    p = point.predict(levels)
    d = deviance(k, n, p)
    rng = np.random.default_rng(seed)
    k_sim = rng.binomial(np.rint(n).astype(np.int64), np.nan_to_num(p, nan=0.5),
                         size=(n_sim, *k.shape)).astype(float)
    n_sim_counts = np.broadcast_to(n, k_sim.shape)
    sim = fit_psychometric(levels, k_sim, n_sim_counts, **fit_options)
    d_sim = deviance(k_sim, n_sim_counts, sim.predict(levels))            # (n_sim, O)
    df = (n > 0).sum(-1) - N_PARAMETERS
    with np.errstate(invalid="ignore", divide="ignore"):
        p_gof = (1.0 + (d_sim >= d - 1e-9).sum(0)) / (1.0 + n_sim)
        out = pd.DataFrame({
            "deviance": d, "df": df, "deviance_per_df": np.where(df > 0, d / df, np.nan),
            "dispersion": d / d_sim.mean(0), "gof_p": p_gof, "n_sim": n_sim,
        })
    empty = n.sum(-1) <= 0
    out.loc[empty, ["deviance", "deviance_per_df", "dispersion", "gof_p"]] = np.nan
    out["overdispersed"] = (out["gof_p"] < alpha) & ~empty
    return out


def fit_goodness(curves: pd.DataFrame, *, n_sim: int = 1000, seed: int = 0,
                 sigmoid: str = "logistic") -> pd.DataFrame:
    """``goodness_of_fit`` of every observer of every dataset of ``accuracy_curves`` output."""
    frames = []
    for dataset in pd.unique(curves["dataset"]):
        cm = count_matrix(curves, dataset)
        g = goodness_of_fit(cm.levels, cm.n_correct, cm.n_trials, n_sim=n_sim, seed=seed,
                            sigmoid=sigmoid, guess=cm.guess, scale=cm.fit_scale,
                            increasing=cm.increasing)
        frames.append(pd.concat([cm.observers.assign(dataset=dataset), g], axis=1))
    return pd.concat(frames, ignore_index=True)


def _cells(rows: pd.DataFrame, cluster: str, prefix: str) -> pd.DataFrame:
    out = rows.groupby([cluster, "level"], sort=True)["correct"].agg(["sum", "size"])
    out = out.reset_index().rename(columns={"sum": "k", "size": "n", cluster: "cluster"})
    out["cluster"] = prefix + out["cluster"].astype(str)
    return out


def _wald(b: np.ndarray, cov: np.ndarray, contrast: np.ndarray, df_denominator: int
          ) -> tuple[float, int, float]:
    """Wald test of contrast @ b = 0 with a cluster-robust covariance: (W, q, p), p from
    F = W / q on (q, df_denominator) degrees of freedom."""
    if contrast.shape[0] == 0 or df_denominator < 1:
        return np.nan, 0, np.nan
    c = contrast @ b
    v = contrast @ cov @ contrast.T
    stat = float(c @ np.linalg.pinv(v) @ c)
    q = int(np.linalg.matrix_rank(v))
    return stat, q, float(sps.f.sf(stat / q, q, df_denominator)) if q else np.nan


def curve_difference(trials: pd.DataFrame, *, dataset: str | None = None,
                     reference: str | None = None) -> pd.DataFrame:
    """Per model: does its accuracy curve differ from the reference (human) curve?

    Cluster-robust binomial GLM with one logit per (group, level); humans clustered by
    participant, the model by image. The Wald statistic W (``chi2_*``) is referred to
    F(q, G − 1) as W / q, G the number of participants: with few participants the χ²
    reference rejects a model identical to the humans far too often (0.33 at α = 0.05 with 8
    participants, 0.09 with 20, in simulation; F: 0.013 for both). Levels where either group
    is at 0 % or 100 % have no finite logit and are left out of the test
    (``levels_untested``)."""
    import statsmodels.api as sm

    dataset, reference, people, models = people_and_models(trials, dataset, reference,
                                                            "testing whether their curves differ")
    human = _cells(people, "observer_id", "participant:")
    totals_h = human.groupby("level")[["k", "n"]].sum()
    rows = []
    for name, part in models.groupby("model_name", sort=True):
        model = _cells(part, "image_id", "image:")
        totals_m = model.groupby("level")[["k", "n"]].sum()
        both = totals_h.add_suffix("_h").join(totals_m.add_suffix("_m"), how="inner")
        inside = ((both["k_h"] > 0) & (both["k_h"] < both["n_h"])
                  & (both["k_m"] > 0) & (both["k_m"] < both["n_m"]))
        tested = both.index[inside].to_numpy(dtype=float)
        row = {"dataset": dataset, "reference": reference, "model_name": name,
               "n_trials_reference": int(totals_h["n"].sum()), "n_trials_model": int(part.shape[0]),
               "n_participants": int(people["observer_id"].nunique()),
               "levels_tested": len(tested), "levels_untested": int((~inside).sum()),
               "chi2_curve": np.nan, "df_curve": 0, "df_denominator": 0, "p_curve": np.nan,
               "chi2_shape": np.nan, "df_shape": 0, "p_shape": np.nan,
               "max_abs_logit_difference": np.nan}
        if len(tested):
            cells = pd.concat([human.assign(is_model=0), model.assign(is_model=1)],
                              ignore_index=True)
            cells = cells[cells["level"].isin(tested)]
            q = len(tested)
            lvl = np.searchsorted(tested, cells["level"].to_numpy(dtype=float))
            col = lvl + q * cells["is_model"].to_numpy()
            X = np.zeros((len(cells), 2 * q))
            X[np.arange(len(cells)), col] = 1.0
            y = np.column_stack([cells["k"], cells["n"] - cells["k"]]).astype(float)
            groups = pd.factorize(cells["cluster"])[0]
            res = sm.GLM(y, X, family=sm.families.Binomial()).fit(
                cov_type="cluster", cov_kwds={"groups": groups})
            b, cov = np.asarray(res.params), np.asarray(res.cov_params())
            diff = np.hstack([-np.eye(q), np.eye(q)])                   # model − human
            shape = (diff[1:] - diff[:1]) if q > 1 else np.zeros((0, 2 * q))
            df2 = row["df_denominator"] = row["n_participants"] - 1
            row["chi2_curve"], row["df_curve"], row["p_curve"] = _wald(b, cov, diff, df2)
            row["chi2_shape"], row["df_shape"], row["p_shape"] = _wald(b, cov, shape, df2)
            row["max_abs_logit_difference"] = float(np.max(np.abs(diff @ b)))
        rows.append(row)
    return pd.DataFrame(rows)


def compare_models(alignment: Alignment, *, metrics=METRICS, confidence: float = 0.95,
                   correction: str = CORRECTION, alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of models, every metric: the paired bootstrap difference (a − b) with its
    percentile interval and two-sided p = 2·min(P*(d ≤ 0), P*(d ≥ 0)) over the resamples,
    then ``correction`` (Holm by default) across the pairs of each metric."""
    from statsmodels.stats.multitest import multipletests

    names = list(alignment.scores["model_name"])
    if not alignment.resamples:
        raise InputError("the alignment holds no resamples; compute it with analysis.align.align")
    rows = []
    for metric in metrics:
        scores = alignment.resamples[metric]
        block = []
        for a, b in itertools.combinations(range(len(names)), 2):
            d = scores[:, a] - scores[:, b]
            boot = d[1:][np.isfinite(d[1:])]
            lo, hi = percentile_interval(boot, confidence) if boot.size else (np.nan, np.nan)
            nb = boot.size
            p = min(1.0, 2.0 * min((1 + (boot <= 0).sum()) / (1 + nb),
                                   (1 + (boot >= 0).sum()) / (1 + nb))) if nb else np.nan
            block.append({"metric": metric, "model_a": names[a], "model_b": names[b],
                          "difference": d[0], "low": float(lo), "high": float(hi),
                          "p": p, "n_resamples": nb})
        ps = np.array([r["p"] for r in block], dtype=float)
        ok = np.isfinite(ps)
        adj = np.full(ps.shape, np.nan)
        reject = np.zeros(ps.shape, dtype=bool)
        if ok.any():
            reject[ok], adj[ok] = multipletests(ps[ok], alpha=alpha, method=correction)[:2]
        for r, pa, rj in zip(block, adj, reject, strict=True):
            r.update(p_adjusted=pa, correction=correction, significant=bool(rj))
        rows.extend(block)
    return pd.DataFrame(rows, columns=["metric", "model_a", "model_b", "difference", "low",
                                       "high", "p", "n_resamples", "p_adjusted", "correction",
                                       "significant"])


def glmm_curve_difference(trials: pd.DataFrame, *, dataset: str | None = None,
                          reference: str | None = None,
                          say: Callable[[str], object] | None = None) -> pd.DataFrame:
    """Per model and level: the model − human logit difference from a Bayesian binomial mixed
    model (variational Bayes, ``BinomialBayesMixedGLM.fit_vb``) with one logit per level for
    the humans, a model offset per level, and crossed random intercepts for participants (the
    humans') and images (shared by both). Posterior mean, sd and a 95 % interval per level,
    the participant and image SDs, and the seconds each fit took (also passed to ``say``).
    Mean-field posteriors understate uncertainty; the GLM test stays the test of record."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    dataset, reference, people, models = people_and_models(trials, dataset, reference,
                                                            "testing whether their curves differ")
    z = sps.norm.ppf(0.975)
    rows = []
    for name, part in models.groupby("model_name", sort=True):
        df = pd.concat([people.assign(_model=0), part.assign(_model=1)], ignore_index=True)
        levels = np.sort(pd.unique(df["level"].astype(float)))
        lvl = np.searchsorted(levels, df["level"].to_numpy(dtype=float))
        n, q = len(df), len(levels)
        is_model = df["_model"].to_numpy()
        X = np.zeros((n, 2 * q))
        X[np.arange(n), lvl] = 1.0
        X[np.flatnonzero(is_model), q + lvl[is_model == 1]] = 1.0
        person = np.where(is_model == 0, df["observer_id"].astype(str), None)
        p_codes, p_names = pd.factorize(pd.Series(person))
        i_codes, i_names = pd.factorize(df["image_id"].astype(str))
        rows_p = np.flatnonzero(p_codes >= 0)
        vc = sparse.hstack([
            sparse.csr_matrix((np.ones(rows_p.size), (rows_p, p_codes[rows_p])),
                              shape=(n, len(p_names))),
            sparse.csr_matrix((np.ones(n), (np.arange(n), i_codes)), shape=(n, len(i_names))),
        ]).tocsr()
        ident = np.r_[np.zeros(len(p_names), dtype=int), np.ones(len(i_names), dtype=int)]
        start = time.perf_counter()
        fit = BinomialBayesMixedGLM(df["correct"].to_numpy(dtype=float), X, vc, ident,
                                    vcp_names=["participant", "image"]).fit_vb()
        seconds = time.perf_counter() - start
        if say is not None:
            say(f"GLMM (fit_vb, participant and image intercepts) for {name}: {len(df)} "
                f"trials in {seconds:.1f} s")
        sd_p, sd_i = np.exp(fit.vcp_mean)
        for j, level in enumerate(levels):
            mean, sd = float(fit.fe_mean[q + j]), float(fit.fe_sd[q + j])
            rows.append({"dataset": dataset, "reference": reference, "model_name": name,
                         "level": level, "logit_difference": mean, "sd": sd,
                         "low": mean - z * sd, "high": mean + z * sd,
                         "participant_sd": float(sd_p), "image_sd": float(sd_i),
                         "n_trials": len(df), "seconds": seconds})
    return pd.DataFrame(rows)


def statistics_tables(trials: pd.DataFrame, alignments: dict[str, Alignment] | None = None, *,
                      n_sim: int = 1000, seed: int = 0, glmm: bool = False,
                      say: Callable[[str], object] | None = None
                      ) -> list[tuple[str, str, str, pd.DataFrame]]:
    """Every statistics table of the report, as (title, caption, csv name, table).

    ``trials``: the kept trials with levels (after exclusions); ``alignments``: the
    ``analysis.align.align`` result per dataset with models (its resamples pair the model
    comparisons). The report writes each table as its CSV and lists it."""
    from analysis.consistency import image_difficulty, kappa_summary, pairwise_kappa

    graded = trials[trials["level"].notna()]
    out = []
    curves = accuracy_curves(graded)
    gof = fit_goodness(curves, n_sim=n_sim, seed=seed)
    n_over = int(gof["overdispersed"].sum())
    out.append(("Goodness of fit", f"Deviance of each psychometric fit and its parametric-"
                f"bootstrap p ({n_sim} data sets simulated from the fitted curve and refit); "
                f"overdispersed = p < {GOF_ALPHA:g} ({n_over} of {len(gof)} fits); dispersion "
                "= deviance / mean simulated deviance (≈ 1 for binomial noise).",
                "goodness_of_fit.csv", gof))
    with_models = [d for d in pd.unique(graded["dataset"])
                   if (graded.loc[graded["dataset"] == d, "observer_type"] == "model").any()
                   and (graded.loc[graded["dataset"] == d, "observer_type"] != "model").any()]
    if not with_models:
        return out
    diff, pairs, per_image, rho, mixed, comps = [], [], [], [], [], []
    for dataset in with_models:
        part = graded[graded["dataset"] == dataset]
        diff.append(curve_difference(part, dataset=dataset))
        pairs.append(pairwise_kappa(part, dataset=dataset))
        img, r = image_difficulty(part, dataset=dataset)
        per_image.append(img)
        rho.append(r)
        if glmm:
            mixed.append(glmm_curve_difference(part, dataset=dataset, say=say))
        a = (alignments or {}).get(dataset)
        if a is not None and len(a.scores) > 1:
            comps.append(compare_models(a).assign(dataset=dataset))
    out.append(("Does each model's curve differ from the humans'?",
                "Binomial GLM, one logit per level for humans and for the model, cluster-"
                "robust SEs (humans clustered by participant, the model by image); p_curve: "
                "Wald test that the model equals the humans at every level (group effect and "
                "level × observer-type interaction together); p_shape: the interaction alone. "
                "Levels where a group is at 0 % or 100 % are not tested (levels_untested).",
                "curve_difference.csv", pd.concat(diff, ignore_index=True)))
    if comps:
        out.append(("Model against model", "Paired bootstrap difference (model_a − model_b) "
                    "of each alignment score over the same resamples, 95 % percentile "
                    "interval, two-sided bootstrap p, Holm-corrected across the pairs of each "
                    "metric (statsmodels multipletests).", "model_comparisons.csv",
                    pd.concat(comps, ignore_index=True)))
    pairs = pd.concat(pairs, ignore_index=True)
    out.append(("Error consistency per human–model pair", "Geirhos et al.'s estimator: κ of "
                "each pair on the stimuli both saw at a level (NaN when c_exp = 1); its mean "
                "over defined pairs and levels is error_consistency_pairwise in the alignment "
                "table.", "error_consistency_pairs.csv", pairs))
    out.append(("Error consistency summary", "Per model: pairs, defined pairs, median shared "
                "trials per pair, and the mean κ.", "error_consistency_summary.csv",
                kappa_summary(pairs)))
    out.append(("Which images are hard: humans vs each model", "Spearman ρ across images "
                "between the humans' accuracy on an image and the model's accuracy on the same "
                "stimuli (image and level).", "image_difficulty_correlation.csv",
                pd.concat(rho, ignore_index=True)))
    out.append(("Per-image accuracy", "Per model and image: the humans' accuracy and the "
                "model's on the same stimuli.", "image_difficulty.csv",
                pd.concat(per_image, ignore_index=True)))
    if glmm:
        out.append(("Mixed model (opt-in --glmm)", "BinomialBayesMixedGLM.fit_vb: model − "
                    "human logit per level with crossed participant and image intercepts; "
                    "posterior mean, sd, 95 % interval; seconds per fit.", "glmm.csv",
                    pd.concat(mixed, ignore_index=True)))
    return out
