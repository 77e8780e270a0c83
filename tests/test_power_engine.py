"""The power engine recovers the analytic power of a two-sample z test within Monte-Carlo error."""

import numpy as np
import pytest

from analysis.power_engine import (
    simulate_power,
    smallest_n,
    two_sample_z_experiment,
    two_sample_z_power,
)


def test_analytic_power_formula_known_values():
    # delta = 0.5 sd, 64 per group, alpha .05: the textbook ~0.807
    assert two_sample_z_power(0.5, 1.0, 64) == pytest.approx(0.807, abs=0.002)
    assert two_sample_z_power(0.0, 1.0, 50) == pytest.approx(0.05, abs=1e-9)


@pytest.mark.parametrize("n", [10, 30, 64])
def test_simulated_power_matches_analytic_within_mc_error(n):
    points = simulate_power(two_sample_z_experiment(0.5, 1.0), [n], n_sims=2000, seed=n,
                            progress=False)
    p = points[0]
    expected = two_sample_z_power(0.5, 1.0, n)
    # 4 standard errors: fails by chance about once in 16,000 runs
    assert abs(p.power - expected) < 4 * np.sqrt(expected * (1 - expected) / p.n_sims)


def test_type_one_error_is_alpha_when_there_is_no_effect():
    p = simulate_power(two_sample_z_experiment(0.0, 1.0), [20], n_sims=4000, seed=3,
                       progress=False)[0]
    assert abs(p.power - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 4000)


def test_smallest_n_reads_the_table():
    points = simulate_power(two_sample_z_experiment(0.8, 1.0), [5, 20, 60], n_sims=400, seed=1,
                            progress=False)
    assert points[0].power < points[1].power < points[2].power + 1e-9
    # analytic power: 0.72 at n = 20 (3.7 MC standard errors below 0.8), 0.99 at n = 60
    assert smallest_n(points, 0.8) == 60
    assert smallest_n(points, 1.01) is None


def test_same_seed_same_answer():
    exp = two_sample_z_experiment(0.3, 1.0)
    a = simulate_power(exp, [15], n_sims=300, seed=7, progress=False)
    b = simulate_power(exp, [15], n_sims=300, seed=7, progress=False)
    assert a == b
