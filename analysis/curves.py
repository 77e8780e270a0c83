"""Decision curves: accuracy per level per observer with Wilson intervals, and pooled curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from suite.errors import InputError

CURVE_KEY = ["dataset", "observer_type", "observer_id", "model_name"]


def wilson_interval(k, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes in n trials (arrays broadcast); NaN where n = 0.

    Computed by ``statsmodels.stats.proportion.proportion_confint(method="wilson")``.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    k, n = np.broadcast_arrays(k, n)
    seen = n > 0
    low, high = np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    if seen.any():
        lo, hi = proportion_confint(k[seen], n[seen], alpha=1.0 - confidence, method="wilson")
        low[seen], high[seen] = lo, hi
    return low, high


def accuracy_curves(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy per level per observer: one row per (dataset, observer, level), Wilson CI.

    Rows of the unmasked "full" condition (no level) are left out of curves.
    """
    for col in ("dataset", "observer_type", "observer_id", "level", "correct", "guess"):
        if col not in df:
            raise InputError(f"trial table lacks column {col!r}; load it with "
                             "analysis.load.load_trials")
    rows = df[df["level"].notna()].copy()
    if rows.empty:
        raise InputError("no trials with a level to build curves from")
    rows["model_name"] = rows["model_name"].fillna("")
    g = rows.groupby([*CURVE_KEY, "level"], sort=True)
    out = g.agg(n_trials=("correct", "size"), n_correct=("correct", "sum"),
                guess=("guess", "first"), fit_scale=("fit_scale", "first"),
                increasing=("increasing", "first")).reset_index()
    out["accuracy"] = out["n_correct"] / out["n_trials"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["n_correct"], out["n_trials"],
                                                    confidence)
    return out


def pooled_curve(curves: pd.DataFrame, observer_type: str = "human",
                 confidence: float = 0.95) -> pd.DataFrame:
    """Pooled curve of one observer type per dataset and level: summed counts, Wilson CI.

    ``mean_accuracy`` is the unweighted mean of the observers' accuracies, beside the pooled one.
    """
    part = curves[curves["observer_type"] == observer_type]
    if part.empty:
        raise InputError(f"no {observer_type} observers in the curves; "
                         f"found types {sorted(set(curves['observer_type']))}")
    g = part.groupby(["dataset", "level"], sort=True)
    out = g.agg(n_observers=("observer_id", "nunique"), n_trials=("n_trials", "sum"),
                n_correct=("n_correct", "sum"), mean_accuracy=("accuracy", "mean"),
                guess=("guess", "first")).reset_index()
    out["observer_type"] = observer_type
    out["accuracy"] = out["n_correct"] / out["n_trials"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["n_correct"], out["n_trials"],
                                                    confidence)
    return out


@dataclass(frozen=True)
class CountMatrix:
    """Counts of one dataset as arrays: levels (L,), n_correct and n_trials (O, L)."""

    dataset: str
    levels: np.ndarray
    observers: pd.DataFrame
    n_correct: np.ndarray
    n_trials: np.ndarray
    guess: float
    fit_scale: str
    increasing: bool


def count_matrix(curves: pd.DataFrame, dataset: str) -> CountMatrix:
    """The curves of one dataset as an observers × levels count matrix (0 where unseen)."""
    part = curves[curves["dataset"] == dataset]
    if part.empty:
        raise InputError(f"no curves for dataset {dataset!r}; "
                         f"have {sorted(set(curves['dataset']))}")
    key = ["observer_type", "observer_id", "model_name"]
    k = part.pivot_table(index=key, columns="level", values="n_correct", aggfunc="sum",
                         fill_value=0)
    n = part.pivot_table(index=key, columns="level", values="n_trials", aggfunc="sum",
                         fill_value=0)
    return CountMatrix(dataset=dataset, levels=k.columns.to_numpy(dtype=float),
                       observers=k.index.to_frame(index=False),
                       n_correct=k.to_numpy(dtype=float), n_trials=n.to_numpy(dtype=float),
                       guess=float(part["guess"].iloc[0]), fit_scale=str(part["fit_scale"].iloc[0]),
                       increasing=bool(part["increasing"].iloc[0]))
