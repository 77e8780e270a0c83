"""The simulated observer: its fitted accuracy curve recovers its own threshold and slope."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from experiment.lists import ListConfig, write_lists
from experiment.schema import TRIAL_COLUMNS, read_rows, validate_trial_row
from experiment.simulate import PsychometricObserver, simulate_observer
from suite.errors import InputError
from tests.support.stimulus_sets import make_stimulus_set

ROOT = Path(__file__).resolve().parents[1]
PERCENTS = 10 ** np.linspace(0, 2, 11)  # the authors' 11 levels (paradigm §1)

# Tolerances for 11 levels x 1000 trials: over 40 seeds the MLE's SD was 0.023-0.026 in
# log10 threshold and 6-8 % in slope (bias < 3 %); the bounds are about 3.5 SD wide.
LOG10_THRESHOLD_TOL = 0.09
SLOPE_REL_TOL = 0.25


def _list_rows(n_per_level: int) -> list[dict]:
    rows = []
    for k, p in enumerate(PERCENTS):
        for j in range(n_per_level):
            rows.append({"list_id": "list-01", "block": 1, "trial": len(rows) + 1, "practice": 0,
                         "stimulus_id": f"s{k}_{j}", "image_id": f"i{j}",
                         "category": "animal" if j % 2 else "non-animal",
                         "level_index": k, "level_percent": f"{p:.4g}"})
    return rows


def _fit(percent: np.ndarray, k: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """Binomial MLE of (log10 threshold, slope, lapse) with guess fixed at 0.5."""
    x = np.log10(percent)

    def nll(theta):
        t, log_s, lapse = theta
        p = 0.5 + (0.5 - lapse) / (1 + np.exp(-np.exp(log_s) * (x - t)))
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return -np.sum(k * np.log(p) + (n - k) * np.log1p(-p))

    res = minimize(nll, x0=[1.0, 0.0, 0.02], method="L-BFGS-B",
                   bounds=[(-1, 3), (-3, 4), (0.0, 0.2)])
    assert res.success, res.message
    return res.x[0], float(np.exp(res.x[1])), res.x[2]


@pytest.mark.parametrize("threshold,slope", [(6.0, 2.5), (20.0, 4.0)])
def test_fit_recovers_threshold_and_slope(threshold, slope):
    observer = PsychometricObserver(threshold=threshold, slope=slope, lapse=0.03,
                                    rt_mu=300, rt_sigma=40, rt_tau=40)
    rows = simulate_observer(_list_rows(1000), observer, np.random.default_rng(1))
    answered = [r for r in rows if not r["timeout"]]
    assert len(answered) > 0.99 * len(rows)  # this RT distribution almost never times out
    level = np.array([r["level_index"] for r in answered])
    correct = np.array([r["correct"] for r in answered])
    n = np.bincount(level, minlength=11)
    k = np.bincount(level, weights=correct, minlength=11)
    t_hat, s_hat, _ = _fit(PERCENTS, k, n)
    assert abs(t_hat - np.log10(threshold)) < LOG10_THRESHOLD_TOL
    assert abs(s_hat - slope) / slope < SLOPE_REL_TOL


def test_rows_follow_the_trial_schema_and_timeout_rule():
    observer = PsychometricObserver(rt_mu=520, rt_sigma=60, rt_tau=80, p_no_response=0.05)
    rows = simulate_observer(_list_rows(100), observer, np.random.default_rng(2))
    for r in rows:
        validate_trial_row(r)
        assert r["observer_type"] == "simulated" and r["runner"] == "simulation"
        if r["response"] == "none":
            assert r["timeout"] == 1 and r["rt_ms"] is None and r["correct"] == 0
        else:
            assert r["timeout"] == int(r["rt_ms"] > 550)
        if r["timeout"]:
            assert r["correct"] == 0
    timeouts = np.mean([r["timeout"] for r in rows])
    assert 0.3 < timeouts < 0.9  # most RTs land near the 550 ms window with these parameters


def test_same_seed_same_answers_other_seed_differs():
    observer = PsychometricObserver()
    a = simulate_observer(_list_rows(30), observer, np.random.default_rng(5))
    b = simulate_observer(_list_rows(30), observer, np.random.default_rng(5))
    c = simulate_observer(_list_rows(30), observer, np.random.default_rng(6))
    key = [(r["response"], r["rt_ms"]) for r in a]
    assert key == [(r["response"], r["rt_ms"]) for r in b]
    assert key != [(r["response"], r["rt_ms"]) for r in c]


def test_out_of_range_parameters_are_refused():
    with pytest.raises(InputError, match="lapse"):
        PsychometricObserver(lapse=0.6)


def test_cli_answers_a_written_list(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 6, 6, 3, full=True)
    list_csv = write_lists(stim, tmp_path / "lists", ListConfig(blocks=2))[0]
    out = tmp_path / "sim" / "trials.csv"
    proc = subprocess.run([sys.executable, "-m", "experiment", "simulate", "--list", str(list_csv),
                           "--out", str(out), "--seed", "3", "--repeats", "2", "--threshold", "5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out, required=TRIAL_COLUMNS)
    assert len(rows) == 24
    assert {r["observer_id"] for r in rows} == {"sim-001-list-01-01", "sim-001-list-01-02"}
    assert {r["session_id"] for r in rows} == {"sim-001-list-01-01", "sim-001-list-01-02"}
    assert {r["observer_type"] for r in rows} == {"simulated"}
    assert {r["runner"] for r in rows} == {"simulation"}
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["parameters"]["observer"]["threshold"] == 5.0 and "versions" in record


def _simulate(*argv):
    return subprocess.run([sys.executable, "-m", "experiment", "simulate", *map(str, argv)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_observers_simulated_on_different_lists_stay_different_people(tmp_path):
    # 4 lists × 3 repeats pooled: 12 observers of 8 trials, not 3 observers of 32
    stim = make_stimulus_set(tmp_path / "set", 4, 4, 3, full=True)
    lists = write_lists(stim, tmp_path / "lists", ListConfig(blocks=2))
    assert len(lists) == 4
    pooled = []
    for k, list_csv in enumerate(lists):
        out = tmp_path / "sim" / f"trials-{k}.csv"
        proc = _simulate("--list", list_csv, "--out", out, "--repeats", 3, "--seed", k)
        assert proc.returncode == 0, proc.stderr
        pooled += read_rows(out, required=TRIAL_COLUMNS)
    per_observer = Counter(r["observer_id"] for r in pooled)
    assert len(per_observer) == 12 and set(per_observer.values()) == {8}
    assert {r["list_id"] for r in pooled if r["observer_id"] == "sim-001-list-03-02"} == {"list-03"}
    assert len({r["session_id"] for r in pooled}) == 12


def test_out_equal_to_the_list_is_refused_and_the_list_kept(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 3, 3, 3)
    list_csv = write_lists(stim, tmp_path / "lists")[0]
    before = list_csv.read_bytes()
    same = tmp_path / "lists" / ".." / "lists" / list_csv.name  # the same file, spelled otherwise
    proc = _simulate("--list", list_csv, "--out", same)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "input" in proc.stderr
    assert list_csv.read_bytes() == before
    assert not list_csv.with_suffix(".json").exists()


@pytest.mark.parametrize("case", ["folder", "under-file", "provenance-is-the-list"])
def test_bad_output_paths_are_one_clear_error_before_work(tmp_path, case):
    stim = make_stimulus_set(tmp_path / "set", 3, 3, 3)
    list_csv = write_lists(stim, tmp_path / "lists")[0]
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    (tmp_path / "folder").mkdir()
    json_list = tmp_path / "list.json"  # a list whose name the provenance would take
    json_list.write_bytes(list_csv.read_bytes())
    args = {"folder": (list_csv, tmp_path / "folder"),
            "under-file": (list_csv, blocker / "trials.csv"),
            "provenance-is-the-list": (json_list, tmp_path / "list.csv")}[case]
    proc = _simulate("--list", args[0], "--out", args[1])
    assert proc.returncode == 2 and proc.stderr.startswith("error:"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert blocker.read_text() == "a file" and list((tmp_path / "folder").iterdir()) == []
    assert json_list.read_bytes() == list_csv.read_bytes()
    assert not (tmp_path / "list.csv").exists()
