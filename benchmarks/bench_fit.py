"""Psychometric fits: the suite's vectorized MLE against psignifit 4, on real human data.

Fits every observer of the model-vs-human contrast (log10 contrast) and uniform-noise
(linear noise width, decreasing) experiments with both fitters on the same x, prints the
thresholds side by side, whether the suite's lies in psignifit's 95 % interval, the time
per fit of each and their ratio; then times 85 observers × 11 levels × 1000 bootstrap
resamples. psignifit is a benchmark-only dependency.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.bootstrap import bootstrap_fit  # noqa: E402
from analysis.curves import accuracy_curves, count_matrix  # noqa: E402
from analysis.fit import fit_psychometric  # noqa: E402
from analysis.load import load_trials  # noqa: E402
from tests.support.data import MVH_RAW as DATA  # noqa: E402

EXPERIMENTS = ("contrast", "uniform-noise")


def psignifit_fit(x, k, n, increasing):
    """One psignifit 4 fit (16-AFC, logistic); returns (threshold, (low, high)) on x.

    A decreasing curve is given to psignifit as an increasing one in −x, as the suite fits
    it: psignifit's ``neg_`` sigmoids flip the whole function, which puts the guess rate at
    the top (1 − γ) and the lapse at the bottom — not a model of a 16-AFC task.
    """
    import psignifit

    sign = 1.0 if increasing else -1.0
    data = np.column_stack([sign * x, k, n])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = psignifit.psignifit(data, sigmoid="logistic", experiment_type="nAFC",
                                  experiment_choices=16, verbose=False)
    lo, hi = sorted(sign * np.asarray(res.confidence_intervals["threshold"]["0.95"]))
    return sign * float(res.parameter_estimate["threshold"]), (float(lo), float(hi))


def compare_with_psignifit() -> tuple[int, int, float, float]:
    """Fit each observer with both; print a table; return (inside, total, t_ours, t_ref)."""
    curves = accuracy_curves(load_trials([DATA / e for e in EXPERIMENTS]))
    inside = total = 0
    t_ours, t_ref = [], []
    print(f"{'experiment':<15}{'observer':<12}{'suite':>9}{'psignifit':>11}"
          f"{'95% interval':>22}  inside")
    for exp in EXPERIMENTS:
        cm = count_matrix(curves, exp)
        x = np.log10(cm.levels) if cm.fit_scale == "log10" else cm.levels
        for o, obs in enumerate(cm.observers["observer_id"]):
            t0 = time.perf_counter()
            ours = fit_psychometric(cm.levels, cm.n_correct[o], cm.n_trials[o],
                                    guess=cm.guess, scale=cm.fit_scale,
                                    increasing=cm.increasing)
            t_ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref, (lo, hi) = psignifit_fit(x, cm.n_correct[o], cm.n_trials[o], cm.increasing)
            t_ref.append(time.perf_counter() - t0)
            ok = lo <= float(ours.threshold_x) <= hi
            inside += ok
            total += 1
            print(f"{exp:<15}{obs:<12}{float(ours.threshold_x):>9.3f}{ref:>11.3f}"
                  f"{f'[{lo:.3f}, {hi:.3f}]':>22}  {'yes' if ok else 'NO'}")
    print("(thresholds on the fit scale: log10 % contrast; uniform-noise width)")
    return inside, total, float(np.median(t_ours)), float(np.median(t_ref))


def time_bootstrap(n_obs=85, n_boot=1000) -> tuple[float, float]:
    """Seconds for n_obs × 11 levels × n_boot resample fits; fraction converged."""
    rng = np.random.default_rng(0)
    levels = 10 ** np.linspace(0, 2, 11)
    alpha = rng.uniform(0.6, 1.4, n_obs)
    p = 0.5 + 0.45 / (1 + np.exp(-(np.log10(levels) - alpha[:, None]) / 0.2))
    n = np.full((n_obs, 11), 18.0)  # 200 images over 11 levels per participant
    k = rng.binomial(18, p).astype(float)
    t0 = time.perf_counter()
    bf = bootstrap_fit(levels, k, n, n_boot=n_boot, seed=1)
    return time.perf_counter() - t0, float(bf.resampled.converged.mean())


def main() -> int:
    inside, total, t_ours, t_ref = compare_with_psignifit()
    ratio = t_ref / t_ours
    print(f"time per fit (median): suite {t_ours * 1e3:.2f} ms, psignifit {t_ref * 1e3:.0f} ms, "
          f"ratio {ratio:.0f}x")
    seconds, conv = time_bootstrap()
    print(f"85 observers x 11 levels x 1000 resamples: {seconds:.1f} s "
          f"({85_000 / seconds:.0f} fits/s, {conv:.1%} converged)")
    met = inside == total and ratio >= 100 and seconds < 60
    print(f"BENCH fit inside_psignifit_ci={inside}/{total} speedup={ratio:.0f}x "
          f"bootstrap_85x11x1000_s={seconds:.1f} target={'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
