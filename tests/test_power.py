"""Power analysis for decision alignment: the fast count simulation agrees with trial-level
simulated observers, and power behaves as it must."""

import csv
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from analysis.power import PowerDesign, count_experiment, expected_scores, trial_experiment
from analysis.power_engine import simulate_power
from stimuli.errors import InputError

DESIGN = PowerDesign(n_images=110, n_boot=200)


def test_count_shortcut_agrees_with_direct_trial_simulation():
    # the direct path answers Latin-square trial rows with experiment.simulate's observer
    n, sims = 12, 300
    fast = simulate_power(count_experiment(DESIGN), [n], sims, seed=11, progress=False)[0]
    direct = simulate_power(trial_experiment(DESIGN), [n], sims, seed=12, progress=False)[0]
    se = np.hypot(fast.mc_se, direct.mc_se)
    assert abs(fast.power - direct.power) < 4 * max(se, 0.01), (fast, direct)


def test_power_grows_with_participants_and_with_the_difference():
    near = replace(DESIGN, model_b_threshold=11.0)
    far = replace(DESIGN, model_b_threshold=16.0)
    p = {(name, n): simulate_power(count_experiment(d), [n], 200, seed=n, progress=False)[0].power
         for name, d in (("near", near), ("far", far)) for n in (8, 96)}
    assert p[("far", 96)] > p[("far", 8)] + 0.3
    assert p[("far", 96)] > p[("near", 96)]
    assert p[("far", 96)] > 0.75


def test_expected_scores_rank_the_aligned_model_first():
    a, b = expected_scores(DESIGN)
    assert a > b and np.isfinite(a) and np.isfinite(b)
    same = expected_scores(replace(DESIGN, model_b_threshold=DESIGN.model_a_threshold))
    assert same[0] == pytest.approx(same[1])


def test_design_rejects_too_few_images():
    with pytest.raises(InputError, match="n_images"):
        PowerDesign(n_images=5)


def test_cli_writes_table_figure_and_provenance(tmp_path):
    out = tmp_path / "power"
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "power", "--out", str(out), "--n", "6,60",
         "--sims", "60", "--images", "110", "--boot", "100", "--model-b-threshold", "18"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out / "power.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["n_participants"] for r in rows] == ["6", "60"]
    assert float(rows[1]["power"]) > float(rows[0]["power"])
    assert 0 <= float(rows[1]["false_positive_rate"]) <= 0.2
    record = json.loads((out / "power.json").read_text())
    assert record["parameters"]["model_b_threshold"] == 18.0
    assert record["observers"].startswith("simulated")
    assert (out / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "smallest n with power" in proc.stdout
