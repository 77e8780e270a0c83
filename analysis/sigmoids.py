"""The catalogue of core sigmoids F(z) a psychometric function can use: CDF, density, inverse.

Each entry is a standard location-scale CDF on z = (x − α)/β. ``gumbel`` is the
left-skewed Gumbel, 1 − exp(−exp(z)): a Weibull function in log10 stimulus units
(the same distribution psignifit calls ``gumbel``/``weibull``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from suite.errors import InputError


@dataclass(frozen=True)
class Sigmoid:
    """A core sigmoid: ``cdf(z)``, ``pdf(z)`` and ``ppf(p)`` on the standard scale."""

    name: str
    cdf: Callable[[np.ndarray], np.ndarray]
    pdf: Callable[[np.ndarray], np.ndarray]
    ppf: Callable[[np.ndarray], np.ndarray]


def _logistic_pdf(z):
    e = special.expit(z)
    return e * (1.0 - e)


def _gumbel_cdf(z):
    return -np.expm1(-np.exp(np.minimum(z, 50.0)))


def _gumbel_pdf(z):
    zc = np.minimum(z, 50.0)
    return np.exp(zc - np.exp(zc))


def _gumbel_ppf(p):
    return np.log(-np.log1p(-np.asarray(p, dtype=float)))


SIGMOIDS: dict[str, Sigmoid] = {
    "logistic": Sigmoid("logistic", special.expit, _logistic_pdf, special.logit),
    "normal": Sigmoid("normal", special.ndtr,
                      lambda z: np.exp(-0.5 * np.square(z)) / np.sqrt(2.0 * np.pi),
                      special.ndtri),
    "gumbel": Sigmoid("gumbel", _gumbel_cdf, _gumbel_pdf, _gumbel_ppf),
}
# Weibull on log10 units is the Gumbel sigmoid; the alias keeps the field's usual name.
SIGMOIDS["weibull"] = SIGMOIDS["gumbel"]


def get_sigmoid(name: str) -> Sigmoid:
    """The catalogue entry for ``name`` (logistic, normal, gumbel or weibull)."""
    try:
        return SIGMOIDS[name]
    except KeyError:
        raise InputError(
            f"unknown sigmoid {name!r}; choose one of: {', '.join(SIGMOIDS)}"
        ) from None
