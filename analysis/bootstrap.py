"""Bootstrap resampling as arrays: item weights, resampled counts, percentile intervals, fits."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.fit import FitResult, fit_psychometric
from suite.errors import InputError

DEFAULT_N_BOOT = 1000


def resample_weights(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n_items is drawn in each of n_boot resamples with replacement: (R, n)."""
    if n_items < 1:
        raise InputError("nothing to resample: need at least one item")
    return rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_boot).astype(float)


def resample_counts(n_correct, n_trials, n_boot: int, rng: np.random.Generator
                    ) -> np.ndarray:
    """Trials resampled with replacement within each cell: (R, ...) binomial counts."""
    k = np.asarray(n_correct, dtype=float)
    n = np.asarray(n_trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / np.where(n > 0, n, 1.0), 0.0)
    return rng.binomial(n.astype(np.int64), p, size=(n_boot, *k.shape)).astype(float)


def percentile_interval(samples, confidence: float = 0.95, axis: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along ``axis``, ignoring NaN resamples."""
    q = [50.0 * (1.0 - confidence), 50.0 * (1.0 + confidence)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN bounds
        lo, hi = np.nanpercentile(np.asarray(samples, dtype=float), q, axis=axis)
    return lo, hi


@dataclass(frozen=True)
class BootstrapFit:
    """A point fit per observer, its resampled fits (R, O) and percentile intervals."""

    point: FitResult
    resampled: FitResult
    confidence: float

    def summary(self) -> pd.DataFrame:
        """One row per observer: threshold and slope with intervals, lapse, convergence."""
        out = {}
        for name in ("threshold", "slope"):
            lo, hi = percentile_interval(getattr(self.resampled, name), self.confidence)
            out[name] = getattr(self.point, name)
            out[f"{name}_low"], out[f"{name}_high"] = lo, hi
        out["lapse"] = self.point.lapse
        out["converged"] = self.point.converged
        out["resamples_converged"] = self.resampled.converged.mean(axis=0)
        return pd.DataFrame(out)


def bootstrap_fit(levels, n_correct, n_trials, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                  confidence: float = 0.95, **fit_options) -> BootstrapFit:
    """Fit every observer (O, L) and n_boot trial resamples of each, all in one batch."""
    rng = np.random.default_rng(seed)
    k = np.atleast_2d(np.asarray(n_correct, dtype=float))
    n = np.atleast_2d(np.asarray(n_trials, dtype=float))
    point = fit_psychometric(levels, k, n, **fit_options)
    boot_k = resample_counts(k, n, n_boot, rng)
    resampled = fit_psychometric(levels, boot_k, np.broadcast_to(n, boot_k.shape),
                                 **fit_options)
    return BootstrapFit(point=point, resampled=resampled, confidence=confidence)
