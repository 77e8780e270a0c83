"""Normalize decision curves before comparing them (paradigm §1).

- ``chance`` (default): chance-to-ceiling, (acc − γ)/(max − γ). Chance γ is a known constant
  of the task, so only the ceiling is estimated from noisy data; a curve that stays above
  chance at the lowest level keeps that information (min–max would force it to 0); values
  can go below 0 when accuracy dips under chance. Generalizes the paradigm's 0.5 to any γ.
- ``minmax``: (acc − min)/(max − min) across levels, as in the authors' draft code. Both
  ends are noisy estimates, and every curve is stretched to span [0, 1].

A curve whose denominator is ≤ 0 (flat, or never above chance) has no normalized form:
its values are NaN, and callers count such curves rather than hide them.
"""

from __future__ import annotations

import numpy as np

from suite.errors import InputError

METHODS = ("chance", "minmax")
DEFAULT_METHOD = "chance"


def normalize(curve, method: str = DEFAULT_METHOD, guess: float = 0.5) -> np.ndarray:
    """Normalize accuracies along the last axis, (..., L) → (..., L); NaN where undefined."""
    acc = np.asarray(curve, dtype=float)
    if method not in METHODS:
        raise InputError(f"unknown normalization {method!r}; choose one of {METHODS}")
    top = np.nanmax(acc, axis=-1, keepdims=True)
    bottom = np.full_like(top, guess) if method == "chance" \
        else np.nanmin(acc, axis=-1, keepdims=True)
    span = top - bottom
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, (acc - bottom) / np.where(span > 0, span, 1.0), np.nan)
