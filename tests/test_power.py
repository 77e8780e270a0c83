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
         "--sims", "60", "--images", "110", "--n-boot", "100", "--model-b-threshold", "18",
         "--no-search"],  # the grid only
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
    assert "smallest simulated n with power" in proc.stdout


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


def test_search_finds_the_known_n_of_a_z_test():
    # two-sample z test, delta 0.5 sigma: 80 % power needs n = 63 per group (analytic)
    from analysis.power_engine import search_n, two_sample_z_experiment, two_sample_z_power

    exact = next(n for n in range(2, 500) if two_sample_z_power(0.5, 1.0, n) >= 0.8)
    assert exact == 63
    found = search_n(two_sample_z_experiment(0.5, 1.0), 0.8, n_sims=2000, seed=1,
                     progress=False)
    assert abs(found.n - exact) <= 6, found.n          # MC error at 2000 sims: ±~2 % power
    assert found.at_n.power >= 0.8 and found.below.power < 0.8
    assert found.below.n < found.n
    ns = [p.n for p in found.points]
    assert {4, 8, 16, 32, 64} <= set(ns) and len(ns) <= 14   # doubling, then bisection
    assert exact in range(min(found.near), max(found.near) + 1) or abs(found.n - exact) <= 2


def test_search_reports_a_target_out_of_reach():
    from analysis.power_engine import search_n, two_sample_z_experiment

    found = search_n(two_sample_z_experiment(0.01, 1.0), 0.9, n_sims=50, seed=0, n_max=64,
                     progress=False)
    assert found.n is None and found.at_n is None
    assert [p.n for p in found.points] == [4, 8, 16, 32, 64]


def test_cli_searches_n_itself_and_the_figure_has_no_minor_labels(tmp_path):
    out = tmp_path / "power"
    proc = _power_cli("--out", out, "--n", "4", "8", "--sims", "60", "--images", "110",
                      "--n-boot", "100", "--model-b-threshold", "18", timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "power.json").read_text())
    n = record["search"]["n"]
    assert n is not None and n > 8 and record["smallest_n"] == n
    with open(out / "power.csv", newline="") as fh:
        rows = {int(r["n_participants"]): r for r in csv.DictReader(fh)}
    assert rows[n]["source"] == "search" and float(rows[n]["power"]) >= 0.8
    assert rows[n]["false_positive_rate"] != ""          # the null is simulated at the answer
    below = record["search"]["below"]
    assert below["n"] < n and below["power"] < 0.8
    assert f"smallest n with power ≥ 0.8: {n} (power" in proc.stdout and "MC s.e." in proc.stdout


def test_power_figure_labels_only_major_ticks(tmp_path):
    from analysis.power import _figure
    from analysis.power_engine import PowerPoint

    captured = {}
    import matplotlib.pyplot as plt
    real_close = plt.close

    def keep(fig):
        captured["fig"] = fig
        real_close(fig)

    pts = [PowerPoint(n, min(1.0, n / 300), 0.02, 200, 1) for n in (4, 8, 16, 32, 64, 128,
                                                                     192, 224, 232, 256)]
    plt.close = keep
    try:
        _figure(pts, 0.8, tmp_path / "p.png", "t", labelled=(4, 8, 16, 32, 64), found=232)
    finally:
        plt.close = real_close
    ax = captured["fig"].axes[0]
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    major = [t.get_text() for t in ax.get_xticklabels()]
    assert minor == []                                   # no "3×10¹" printed over "32"
    assert major == ["4", "8", "16", "32", "64", "128", "232"]  # 256 too close to 232
