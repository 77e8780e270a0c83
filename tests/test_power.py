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
from suite.errors import InputError

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
        [sys.executable, "-m", "analysis", "power", "--out", str(out), "--n", "6", "60",
         "--sims", "60", "--images", "110", "--n-boot", "100", "--model-b-threshold", "18"],
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


def _power_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "analysis", "power", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("option, value, message", [
    ("--power", "2", "out of range (must be in (0, 1])"),
    ("--n-levels", "1", "1 is too small (must be ≥ 2)"),
    ("--n", "0", "0 is too small (must be ≥ 2)"),
    ("--n", "x", "'x' is not a whole number"),
    ("--n", "4,8", "give several values separated by spaces, not commas"),
    ("--sims", "0", "0 is too small (must be ≥ 1)"),
    ("--n-boot", "10", "10 is too small (must be ≥ 50)"),
    ("--alpha", "1", "out of range (must be in (0, 1))"),
    ("--human-lapse", "0.7", "out of range"),
])
def test_absurd_options_are_refused_at_parse_time(tmp_path, option, value, message):
    out = tmp_path / "power"
    proc = _power_cli("--out", out, option, value)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert f"argument {option}: " in last
    assert message in last and "Traceback" not in proc.stderr
    assert not out.exists()


def test_design_messages_name_the_value_at_fault():
    with pytest.raises(InputError, match=r"n_boot 10 is too small") as err:
        PowerDesign(n_boot=10)
    assert "alpha" not in str(err.value)
    with pytest.raises(InputError, match=r"alpha 2 must be in \(0, 1\)"):
        PowerDesign(alpha=2.0)
    with pytest.raises(InputError, match="at least 2 levels"):
        PowerDesign(levels_percent=(100.0,))


def test_bad_out_is_refused_before_any_simulation(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for out, message in ((a_file, "not a folder"), (a_file / "p", "is a file, not a folder"),
                         (other, "not empty")):
        # --sims 100000 would take minutes: the refusal must come first
        proc = _power_cli("--out", out, "--sims", "100000", timeout=60)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert a_file.read_text() == "x" and (other / "notes.txt").read_text() == "mine"


def test_scores_of_identical_curves_are_capped_without_warnings():
    import warnings

    from analysis.align import NEG_LOG_MSE_CAP
    from analysis.power import _scores

    design = replace(DESIGN, model_b_threshold=DESIGN.model_a_threshold)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = _scores(design.model_curves()[0], design)
        undefined = _scores(np.full(len(design.levels_percent), 0.5), design)
    assert same == pytest.approx([NEG_LOG_MSE_CAP, NEG_LOG_MSE_CAP])
    assert np.isnan(undefined).all()
