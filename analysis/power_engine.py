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


@dataclass(frozen=True)
class SearchResult:
    """The smallest n reaching the target power, found by doubling then bisection.

    ``n`` is None when even ``n_max`` falls short. ``below`` is the largest n simulated
    under the target (None when the first n already reaches it). ``points`` holds every n
    simulated, in n order. ``near`` lists the simulated n whose power is within 2 Monte-Carlo
    standard errors of the target: the answer is no more certain than that range."""

    target: float
    n: int | None
    at_n: PowerPoint | None
    below: PowerPoint | None
    points: list[PowerPoint]
    near: list[int]
    n_max: int


def _one_point(experiment: Experiment, n: int, n_sims: int, seed: int,
               progress: bool) -> PowerPoint:
    """Power at n with a stream of its own (seed, n): the same n gives the same answer
    whatever order the search visits it in."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n]))
    hits = 0
    for _ in tqdm(range(n_sims), desc=f"power n={n}", unit="sim", disable=not progress,
                  leave=False):
        hits += bool(experiment(n, rng))
    p = hits / n_sims
    return PowerPoint(n, p, float(np.sqrt(p * (1 - p) / n_sims)), n_sims, hits)


def search_n(experiment: Experiment, target: float, *, n_sims: int = 200, seed: int = 0,
             n_start: int = 4, n_max: int = 10_000, known: Iterable[PowerPoint] = (),
             progress: bool = True, say=None) -> SearchResult:
    """The smallest n whose simulated power reaches ``target``: from the ``known`` points (a
    grid already simulated) or n_start, n doubles until the target is reached (or n_max),
    then integer bisection between the last n below and the first at or above it.

    Power is estimated, so the search assumes it grows with n; near the target, the
    Monte-Carlo error (``mc_se``, reported with every point, and ``near``) says how far the
    answer can be trusted."""
    if not 0 < target <= 1:
        raise ValueError("target power must be in (0, 1]")
    points = {p.n: p for p in known}

    def at(n: int) -> PowerPoint:
        if n not in points:
            points[n] = _one_point(experiment, n, n_sims, seed, progress)
            if say is not None:
                q = points[n]
                say(f"  n={n}: power {q.power:.3f} ± {q.mc_se:.3f} (MC s.e.)")
        return points[n]

    reached = sorted(n for n, p in points.items() if p.power >= target)
    if reached:
        hi = reached[0]
    else:
        n = max([n_start, *(2 * m for m in points)]) if points else n_start
        n = min(n, n_max)
        while at(n).power < target and n < n_max:
            n = min(2 * n, n_max)
        hi = n if at(n).power >= target else None
    result_n = None
    if hi is not None:
        under = [n for n, p in points.items() if n < hi and p.power < target]
        lo = max(under) if under else 1   # fewer than 2 participants is no study
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if mid < 2:
                break
            if at(mid).power >= target:
                hi = mid
            else:
                lo = mid
        result_n = hi
    ordered = [points[n] for n in sorted(points)]
    below = [p for p in ordered if result_n is not None and p.n < result_n
             and p.power < target]
    near = [p.n for p in ordered if abs(p.power - target) <= 2 * max(p.mc_se, 1e-12)]
    return SearchResult(target, result_n, points.get(result_n) if result_n else None,
                        below[-1] if below else None, ordered, near, n_max)


def two_sample_z_power(delta: float, sigma: float, n: int, alpha: float = 0.05) -> float:
    """Analytic power of a two-sided two-sample z test, n per group, known sigma."""
    z = stats.norm.ppf(1 - alpha / 2)
    shift = abs(delta) / (sigma * np.sqrt(2.0 / n))
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


def two_sample_z_experiment(delta: float, sigma: float, alpha: float = 0.05) -> Experiment:
    """A simulated two-group experiment analysed with the z test.

    The engine's known-answer case.
    """
    z = stats.norm.ppf(1 - alpha / 2)

    def run(n: int, rng: np.random.Generator) -> bool:
        a = rng.normal(0.0, sigma, n)
        b = rng.normal(delta, sigma, n)
        return abs(b.mean() - a.mean()) / (sigma * np.sqrt(2.0 / n)) > z

    return run
