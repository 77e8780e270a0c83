"""Maximum-likelihood psychometric fits, vectorized over any number of observers and resamples.

ψ(x) = γ + (1 − γ − λ)·F((x − α)/β), with x the stimulus on the fit scale (log10 of the
level by default), γ the fixed guess (chance) rate and λ ∈ [0, lapse_max] the lapse rate.
The fit maximizes the binomial likelihood of the trial counts: a coarse grid search done as
one matrix product per chunk of fits, then a projected Levenberg–Marquardt / Fisher-scoring
refinement run on every fit at once. Counts may be fractional (bootstrap weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.sigmoids import get_sigmoid
from suite.errors import InputError

SCALES = ("log10", "linear")
DEFAULT_LAPSE_MAX = 0.2
_EPS = 1e-12
_GRID_CELLS = 2.5e7  # fits × grid points evaluated per chunk (≈200 MB of float64)


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters, shape (...,) each, on the fit scale; thresholds at F = 0.5."""

    alpha: np.ndarray
    beta: np.ndarray
    lapse: np.ndarray
    log_likelihood: np.ndarray
    converged: np.ndarray
    guess: float
    sigmoid: str
    scale: str
    increasing: bool
    n_iterations: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def _sign(self) -> float:
        return 1.0 if self.increasing else -1.0

    @property
    def threshold_x(self) -> np.ndarray:
        """Stimulus on the fit scale where ψ is halfway between γ and 1 − λ."""
        f = get_sigmoid(self.sigmoid)
        return self._sign * (self.alpha + self.beta * f.ppf(0.5))

    @property
    def threshold(self) -> np.ndarray:
        """The threshold in level units (e.g. % revealed)."""
        t = self.threshold_x
        return np.power(10.0, t) if self.scale == "log10" else t

    @property
    def slope(self) -> np.ndarray:
        """dψ/dx at the threshold, per unit of the fit scale (per decade for log10)."""
        f = get_sigmoid(self.sigmoid)
        return self._sign * (1.0 - self.guess - self.lapse) * f.pdf(f.ppf(0.5)) / self.beta

    def predict(self, levels) -> np.ndarray:
        """ψ at ``levels`` (level units), shape (..., n_levels)."""
        u = _to_u(np.asarray(levels, dtype=float), self.scale, self.increasing)
        return _psi(u, self.alpha[..., None], self.beta[..., None], self.lapse[..., None],
                    self.guess, get_sigmoid(self.sigmoid))[0]

    def to_frame(self) -> pd.DataFrame:
        """One row per fit (flattened), with threshold, slope and parameters."""
        return pd.DataFrame({
            "threshold": self.threshold.ravel(), "threshold_x": self.threshold_x.ravel(),
            "slope": self.slope.ravel(), "alpha": self.alpha.ravel(),
            "beta": self.beta.ravel(), "lapse": self.lapse.ravel(),
            "guess": self.guess, "sigmoid": self.sigmoid, "scale": self.scale,
            "log_likelihood": self.log_likelihood.ravel(),
            "converged": self.converged.ravel(),
        })


def _to_u(levels: np.ndarray, scale: str, increasing: bool) -> np.ndarray:
    if scale not in SCALES:
        raise InputError(f"unknown fit scale {scale!r}; choose one of {SCALES}")
    if scale == "log10":
        if np.any(levels <= 0):
            raise InputError("levels must be > 0 on the log10 scale; "
                             "use scale='linear' for levels that include 0")
        x = np.log10(levels)
    else:
        x = levels
    # A decreasing curve is fit as an increasing one in −x, so β stays positive.
    return x if increasing else -x


def _psi(u, alpha, beta, lapse, guess, f):
    z = (u - alpha) / beta
    F = f.cdf(z)
    p = guess + (1.0 - guess - lapse) * F
    return np.clip(p, _EPS, 1.0 - _EPS), z, F


def _loglik(k, n, p):
    return np.sum(k * np.log(p) + (n - k) * np.log1p(-p), axis=-1)


def _grid_start(u, k, n, guess, lapse_max, f, beta_lim):
    """The best point of a fixed (α, β, λ) grid for every fit: (B,) arrays of α, log β, λ."""
    span = u.max() - u.min()
    alphas = np.linspace(u.min() - 0.25 * span, u.max() + 0.25 * span, 31)
    betas = np.geomspace(beta_lim[0] * 3.0, beta_lim[1] / 3.0, 16)
    lapses = np.linspace(0.0, lapse_max, 5)
    A, Bt, Lm = (g.ravel() for g in np.meshgrid(alphas, betas, lapses, indexing="ij"))
    p, _, _ = _psi(u[:, None], A[None], Bt[None], Lm[None], guess, f)  # (L, G)
    # float32 is plenty to rank grid points and halves the cost of the products.
    logp, log1mp = np.log(p).astype(np.float32), np.log1p(-p).astype(np.float32)
    best = np.empty(k.shape[0], dtype=np.intp)
    step = max(1, int(_GRID_CELLS // A.size))
    for s in range(0, k.shape[0], step):
        kk = k[s:s + step].astype(np.float32)
        ll = kk @ logp + (n[s:s + step].astype(np.float32) - kk) @ log1mp
        best[s:s + step] = np.argmax(ll, axis=1)
    return A[best], np.log(Bt[best]), Lm[best]


def fit_psychometric(levels, n_correct, n_trials, *, sigmoid: str = "logistic",
                     guess: float = 0.5, lapse_max: float = DEFAULT_LAPSE_MAX,
                     scale: str = "log10", increasing: bool = True,
                     max_iter: int = 150, tol: float = 1e-8) -> FitResult:
    """MLE fit of ψ to counts: levels (L,) in level units; n_correct, n_trials (..., L)."""
    f = get_sigmoid(sigmoid)
    levels = np.asarray(levels, dtype=float)
    k = np.asarray(n_correct, dtype=float)
    n = np.asarray(n_trials, dtype=float)
    try:
        k, n = np.broadcast_arrays(k, n)
    except ValueError:
        raise InputError(f"n_correct {k.shape} and n_trials {n.shape} do not broadcast") from None
    if levels.ndim != 1 or k.shape[-1:] != levels.shape:
        raise InputError(f"shapes disagree: levels {levels.shape}, n_correct {k.shape}, "
                         f"n_trials {n.shape}; counts must be (..., n_levels)")
    if not 0.0 <= guess < 1.0 or not 0.0 <= lapse_max < 1.0 - guess:
        raise InputError(f"need 0 ≤ guess < 1 and 0 ≤ lapse_max < 1 − guess; "
                         f"got guess={guess}, lapse_max={lapse_max}")
    if np.any(k < 0) or np.any(k > n + 1e-9) or not np.all(np.isfinite(k + n)):
        raise InputError("counts must be finite with 0 ≤ n_correct ≤ n_trials")
    if levels.size < 2:
        raise InputError("a psychometric fit needs at least 2 levels")
    batch = k.shape[:-1]
    k2, n2 = k.reshape(-1, levels.size), n.reshape(-1, levels.size)
    u = _to_u(levels, scale, increasing)
    span = float(u.max() - u.min())
    alpha_lim = (u.min() - span, u.max() + span)
    beta_lim = (span / 1000.0, span * 10.0)
    s_lim = np.log(beta_lim)
    lo = np.array([alpha_lim[0], s_lim[0], 0.0])
    hi = np.array([alpha_lim[1], s_lim[1], lapse_max])

    a, s, lam = _grid_start(u, k2, n2, guess, lapse_max, f, beta_lim)
    p, z, F = _psi(u, a[:, None], np.exp(s)[:, None], lam[:, None], guess, f)
    ll = _loglik(k2, n2, p)
    mu = np.full(a.shape, 1e-3)
    active = np.ones(a.shape, dtype=bool)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 — the count is reported
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        ai, si, li = a[idx, None], s[idx, None], lam[idx, None]
        kk, nn = k2[idx], n2[idx]
        beta = np.exp(si)
        pi, zi, Fi = _psi(u, ai, beta, li, guess, f)
        dens = f.pdf(zi) * (1.0 - guess - li)
        # ∂p/∂(α, log β, λ): (B, L, 3)
        J = np.stack([-dens / beta, -dens * zi, -Fi], axis=-1)
        w = 1.0 / (pi * (1.0 - pi))
        g = np.einsum("blj,bl->bj", J, (kk - nn * pi) * w)
        H = np.einsum("blj,blk,bl->bjk", J, J, nn * w)
        # Active set: a parameter on its bound whose gradient points outward is held
        # fixed this step, so a clipped coupled step cannot stall the others.
        th = np.stack([ai[:, 0], si[:, 0], li[:, 0]], axis=1)
        held = ((th <= lo + 1e-12) & (g < 0)) | ((th >= hi - 1e-12) & (g > 0))
        free = (~held).astype(float)
        g = g * free
        H = H * free[:, :, None] * free[:, None, :] + np.eye(3) * held[:, :, None]
        D = np.diagonal(H, axis1=1, axis2=2)
        Hd = H + (mu[idx, None, None] * (D[:, :, None] + 1e-9)) * np.eye(3)
        step = np.linalg.solve(Hd, g[..., None])[..., 0]
        na = np.clip(ai[:, 0] + step[:, 0], *alpha_lim)
        ns = np.clip(si[:, 0] + step[:, 1], *s_lim)
        nl = np.clip(li[:, 0] + step[:, 2], 0.0, lapse_max)
        pn, _, _ = _psi(u, na[:, None], np.exp(ns)[:, None], nl[:, None], guess, f)
        lln = _loglik(kk, nn, pn)
        ok = lln >= ll[idx] - 1e-12
        gain = np.where(ok, lln - ll[idx], 0.0)
        acc = idx[ok]
        a[acc], s[acc], lam[acc], ll[acc] = na[ok], ns[ok], nl[ok], lln[ok]
        mu[idx] = np.where(ok, np.maximum(mu[idx] * 0.3, 1e-9), mu[idx] * 10.0)
        done = (ok & (gain < tol)) | (mu[idx] > 1e8)
        active[idx[done]] = False

    empty = n2.sum(axis=1) <= 0
    conv = ~active & ~empty
    out = [np.where(empty, np.nan, v).reshape(batch) for v in (a, np.exp(s), lam, ll)]
    return FitResult(alpha=out[0], beta=out[1], lapse=out[2], log_likelihood=out[3],
                     converged=conv.reshape(batch), guess=float(guess), sigmoid=f.name,
                     scale=scale, increasing=bool(increasing), n_iterations=it)
