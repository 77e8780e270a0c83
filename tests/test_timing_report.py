"""The timing report: frame mismatches, dropped frames, fixation range and timeouts are counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiment.schema import TrialWriter, read_rows
from experiment.timing import timing_report

ROOT = Path(__file__).resolve().parents[1]

# (frames shown, dropped, fixation ms, response, timeout, rt ms) per trial; 24 intended.
TRIALS = [(24, 0, 1100.0, "animal", 0, 312.5), (25, 1, 1350.0, "non-animal", 0, 401.0),
          (24, 0, 1600.0, "none", 1, None), (24, 0, 1700.0, "animal", 1, 812.0),
          (24, 0, 1433.33, "animal", 0, 275.0)]


def _session(path: Path, runner: str = "lab") -> Path:
    with TrialWriter(path) as writer:
        for i, (shown, dropped, fix, resp, timeout, rt) in enumerate(TRIALS, start=1):
            writer.write({"observer_id": "1", "observer_type": "human", "runner": runner,
                          "session_id": "s", "list_id": "list-01", "block": 1, "trial": i,
                          "practice": 0, "category": "animal", "response": resp,
                          "correct": int(resp == "animal" and not timeout), "rt_ms": rt,
                          "timeout": timeout, "fixation_ms": fix, "frames_intended": 24,
                          "frames_shown": shown, "dropped_frames": dropped, "refresh_hz": 60.0})
    return path


def test_report_counts_what_went_wrong(tmp_path):
    path = _session(tmp_path / "sub-1.csv")
    report = timing_report(read_rows(path), path)
    assert report["frames"]["intended_vs_shown"] == {"24->24": 4, "24->25": 1}
    assert report["frames"]["mismatched_trials"] == ["0/2"]
    assert report["frames"]["dropped_total"] == 1 and report["frames"]["trials_with_drops"] == 1
    assert report["fixation_ms"]["outside_range"] == 1
    assert report["fixation_ms"]["min"] == 1100.0 and report["fixation_ms"]["max"] == 1700.0
    assert report["timeouts"] == {"n": 2, "rate": 0.4, "no_response": 1}
    assert report["rt_ms"]["n"] == 3 and report["rt_ms"]["median"] == pytest.approx(312.5)
    assert len(report["problems"]) == 2


def test_cli_prints_verdict_writes_json_and_strict_fails(tmp_path):
    path = _session(tmp_path / "sub-1.csv")
    cmd = [sys.executable, "-m", "experiment", "timing", str(path), "--json", str(tmp_path / "t.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dropped frames: 1 in 1 trial(s)" in proc.stdout and "verdict: CHECK" in proc.stdout
    assert json.loads((tmp_path / "t.json").read_text())["timeouts"]["n"] == 2
    strict = subprocess.run([*cmd, "--strict"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1


def test_non_lab_table_is_refused(tmp_path):
    path = _session(tmp_path / "sim.csv", runner="simulation")
    proc = subprocess.run([sys.executable, "-m", "experiment", "timing", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a lab session" in proc.stderr
