"""The timing report: frame mismatches, dropped frames, fixation range and timeouts are counted."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from experiment import timing
from experiment.schema import TrialWriter, read_rows
from experiment.timing import timing_report
from suite.errors import InputError

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
    cmd = [sys.executable, "-m", "experiment", "timing", str(path),
           "--json", str(tmp_path / "t.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dropped frames: 1 in 1 trial(s)" in proc.stdout and "verdict: CHECK" in proc.stdout
    assert json.loads((tmp_path / "t.json").read_text())["timeouts"]["n"] == 2
    strict = subprocess.run([*cmd, "--strict"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert strict.returncode == 1


def test_non_lab_table_is_refused(tmp_path):
    path = _session(tmp_path / "sim.csv", runner="simulation")
    proc = subprocess.run([sys.executable, "-m", "experiment", "timing", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a lab session" in proc.stderr


# -- what the session record says: cut-short CSVs, missing records, emulated vsync, kills ----

def _record(path: Path, **run) -> Path:
    """A session JSON beside ``path`` with one run; defaults describe a clean, complete run."""
    base = {"started_utc": "t0", "status": "complete", "trials_written": len(TRIALS),
            "emulated_vsync": False, "pid": 0, "provenance": {"host": platform.node()},
            "refresh": {"hz": 60.0, "interval_sd_ms": 0.1, "override": False, "problems": []}}
    side = path.with_suffix(".json")
    side.write_text(json.dumps({"participant": "1", "runs": [{**base, **run}]}))
    return side


def _timing(path: Path, *extra: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    timing.add_arguments(parser)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = timing.main(parser.parse_args([str(path), "--strict", *extra]))
    return code, out.getvalue()


def _clean_session(path: Path) -> Path:
    """A session whose trials all went to plan (so only the record can make it CHECK)."""
    with TrialWriter(path) as writer:
        for i in range(1, 5):
            writer.write({"observer_id": "1", "observer_type": "human", "runner": "lab",
                          "session_id": "s", "list_id": "list-01", "block": 1, "trial": i,
                          "practice": 0, "category": "animal", "response": "animal", "correct": 1,
                          "rt_ms": 400.0, "timeout": 0, "fixation_ms": 1200.0,
                          "frames_intended": 24, "frames_shown": 24, "dropped_frames": 0,
                          "refresh_hz": 60.0})
    return path


def test_a_clean_session_with_its_record_is_ok(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    _record(path, trials_written=4)
    code, text = _timing(path)
    assert code == 0 and text.strip().endswith("verdict: OK"), text


def test_a_csv_cut_short_of_the_recorded_trials_is_check(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    _record(path, trials_written=6)
    code, text = _timing(path)
    assert code == 1 and "the CSV has 4 whole trial row(s) but sub-1.json records 6 written" in text


def test_a_partial_row_is_check(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    _record(path, trials_written=4)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("1,human,lab,s,list-01,1,5")
    code, text = _timing(path)
    assert code == 1 and "1 partial row(s) in the CSV" in text
    report = timing.partial_rows(path)
    assert report == 1


def test_no_session_record_is_check(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    code, text = _timing(path)
    assert code == 1 and "no session record sub-1.json beside the CSV" in text


def test_emulated_vsync_and_an_overridden_refresh_check_are_check(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    _record(path, trials_written=4, emulated_vsync=True,
            refresh={"hz": 60.0, "interval_sd_ms": 2.5, "override": True,
                     "problems": ["frame intervals vary by SD 2.50 ms (> 1.0 ms)"]})
    code, text = _timing(path)
    assert code == 1 and "run 1 used emulated vsync" in text
    assert "run 1 ran despite a failed refresh check (--allow-refresh: frame intervals vary" in text


def test_a_killed_run_reads_as_killed_not_running(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid no process has any more
    side = _record(path, status="running", pid=dead.pid, trials_written=None)
    code, text = _timing(path, "--json", str(tmp_path / "t.json"))
    assert code == 1 and "run 1 t0: killed (no end recorded)" in text
    assert "verdict: CHECK" in text and "run 1 killed (no end recorded)" in text
    assert (json.loads((tmp_path / "t.json").read_text())["runs"][0]["state"]
            == "killed (no end recorded)")
    # the record is not edited
    assert json.loads(side.read_text())["runs"][0]["status"] == "running"


def test_a_run_still_in_progress_reads_as_running(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    # A live process whose command line names run-lab, as a session in progress has.
    live = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); "
                             "time.sleep(60)", "run-lab"], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "up\n"  # started, its command line in place
        _record(path, status="running", pid=live.pid, trials_written=None)
        code, text = _timing(path)
    finally:
        live.kill()
        live.wait()
    assert code == 1 and "run 1 t0: running" in text and "run 1 is still running" in text


def test_an_interruption_and_an_unfinished_session_are_check(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    _record(path, status="interrupted (Ctrl-C)", trials_written=4)
    code, text = _timing(path)
    assert code == 1 and "run 1 ended: interrupted (Ctrl-C)" in text
    _record(path, status="quit (escape)", trials_written=4)
    code, text = _timing(path)
    assert code == 1 and "session not finished (last run quit by Escape)" in text


def test_a_folder_or_a_bad_json_path_is_one_clear_error(tmp_path):
    path = _clean_session(tmp_path / "sub-1.csv")
    proc = subprocess.run([sys.executable, "-m", "experiment", "timing", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode == 2 and proc.stderr.startswith("error:")
            and "is a folder" in proc.stderr)
    assert "Traceback" not in proc.stderr
    with pytest.raises(InputError, match="is a folder; --json takes a file name"):
        _timing(path, "--json", str(tmp_path))
