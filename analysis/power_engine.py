"""Power by simulation: run a simulated experiment many times per sample size, count rejections.

The engine knows nothing about decision curves; ``analysis.power`` supplies the experiment.
A case with an analytic answer (two-sample z test) checks the engine itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from tqdm import tqdm

Experiment = Callable[[int, np.random.Generator], bool]


@dataclass(frozen=True)
class PowerPoint:
    """Estimated power at one sample size, with its Monte-Carlo standard error."""

    n: int
    power: float
    mc_se: float
    n_sims: int
    rejections: int


def simulate_power(experiment: Experiment, n_values: Iterable[int], n_sims: int = 500,
                   seed: int = 0, progress: bool = True) -> list[PowerPoint]:
    """Rejection rate of ``experiment(n, rng) -> bool`` over ``n_sims`` runs for each n."""
    n_values = [int(n) for n in n_values]
    if n_sims < 1 or any(n < 1 for n in n_values):
        raise ValueError("n_sims and every n must be positive")
    seeds = np.random.SeedSequence(seed).spawn(len(n_values))
    points = []
    bar = tqdm(total=n_sims * len(n_values), desc="power", unit="sim", disable=not progress)
    for n, ss in zip(n_values, seeds, strict=True):
        rng = np.random.default_rng(ss)
        hits = 0
        for _ in range(n_sims):
            hits += bool(experiment(n, rng))
            bar.update()
        p = hits / n_sims
        points.append(PowerPoint(n, p, float(np.sqrt(p * (1 - p) / n_sims)), n_sims, hits))
    bar.close()
    return points


def smallest_n(points: Iterable[PowerPoint], target: float) -> int | None:
    """The smallest simulated n whose estimated power reaches ``target`` (None if none does)."""
    reached = [p.n for p in points if p.power >= target]
    return min(reached) if reached else None


def two_sample_z_power(delta: float, sigma: float, n: int, alpha: float = 0.05) -> float:
    """Analytic power of a two-sided two-sample z test, n per group, known sigma."""
    z = stats.norm.ppf(1 - alpha / 2)
    shift = abs(delta) / (sigma * np.sqrt(2.0 / n))
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


def two_sample_z_experiment(delta: float, sigma: float, alpha: float = 0.05) -> Experiment:
    """A simulated two-group experiment analysed with the z test (the engine's known-answer case)."""
    z = stats.norm.ppf(1 - alpha / 2)

    def run(n: int, rng: np.random.Generator) -> bool:
        a = rng.normal(0.0, sigma, n)
        b = rng.normal(delta, sigma, n)
        return abs(b.mean() - a.mean()) / (sigma * np.sqrt(2.0 / n)) > z

    return run
