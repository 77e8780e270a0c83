"""The lab runner's checks and session logic without a window: options, ids, keys, stimuli,
counterbalancing, interruptions and a torn last row (PsychoPy's screen replaced by a stand-in).

The real runner under Xvfb is tested in test_lab_runner.py; these run in a second each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from experiment import lab
from experiment.lab import choose_refresh, new_record
from experiment.lab_screen import check_display
from experiment.lists import ListConfig, write_lists
from experiment.paradigm import TrialTiming
from experiment.schema import TRIAL_COLUMNS, TRIAL_LIST_COLUMNS, read_rows
from experiment.session import check_participant, open_session, parse_keys, verify_stimuli
from suite.errors import InputError
from tests.support.stimulus_sets import make_stimulus_set

GOOD = {"hz": 60.0, "interval_sd_ms": 0.1, "interval_min_ms": 16.6, "interval_max_ms": 16.8,
        "n_frames": 120}


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    """Two lists of 6 trials (2 practice + 4 test) from small synthetic sets, with sha256."""
    base = tmp_path_factory.mktemp("labchecks")
    stim = make_stimulus_set(base / "set", 2, 2, 2)
    prac = make_stimulus_set(base / "practice", 2, 2, 2, prefix="prac")
    return write_lists(stim, base / "lists", ListConfig(seed=1, blocks=2, n_practice=2), prac)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run-lab")
    lab.add_arguments(parser)
    return parser.parse_args(["--list", "L.csv", "--participant", "1", *argv])


# -- options refused when the command line is read ------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (("--window-size", "0x0"), "200-16384 pixels"),
    (("--window-size", "1024"), "WIDTHxHEIGHT"),
    (("--window-size", "99999x768"), "200-16384 pixels"),
    (("--keys", "f,j"), "give several values separated by spaces, not commas"),
    (("--keys", "f"), "give 2 values separated by spaces, got 1"),
    (("--refresh-hz", "1000"), "out of range"),
    (("--refresh-hz", "0"), "out of range"),
    (("--refresh-hz", "nan"), "not a finite number"),
    (("--screen", "-1"), "too small"),
    (("--auto-advance", "-1"), "out of range"),
    (("--auto-advance", "0"), "out of range"),
])
def test_absurd_options_are_refused_when_parsed(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and argv[0] in err
    assert "Traceback" not in err


def test_sensible_options_parse():
    args = parse("--window-size", "800x600", "--refresh-hz", "60", "--screen", "1",
                 "--auto-advance", "1.5", "--keys", "e", "i")
    assert (args.window_size, args.refresh_hz, args.screen, args.auto_advance, args.keys) == \
        ((800, 600), 60.0, 1, 1.5, ["e", "i"])


def test_refresh_of_1000_hz_is_refused_even_with_the_override():
    with pytest.raises(InputError, match="--refresh-hz 1000: must be 50-250"):
        choose_refresh(GOOD, 1000.0, allow=True)
    no_vsync = {**GOOD, "hz": 1000.0, "interval_sd_ms": 0.3}
    with pytest.raises(InputError, match="needs --refresh-hz"):
        # the measured 1000 Hz would make 400-frame stimuli
        choose_refresh(no_vsync, None, allow=True)
    assert choose_refresh(no_vsync, 60.0, allow=True)[0] == 60.0
    assert choose_refresh(GOOD, None, allow=False) == (60.0, [])


# -- participant ids and keys ----------------------------------------------------------------

@pytest.mark.parametrize("pid", ["Zoë", "P1\n", "x" * 65, "-a", "a b", "１２"])
def test_participant_ids_must_be_ascii(pid):
    with pytest.raises(InputError, match="ASCII letters"):
        check_participant(pid)


def test_reserved_and_unknown_keys_are_named_as_such():
    with pytest.raises(InputError, match="escape is reserved"):
        parse_keys(["f", "escape"])
    with pytest.raises(InputError, match="unknown key"):
        parse_keys(["f", "ü"])
    with pytest.raises(InputError, match="two different keys"):
        parse_keys(["f", "f"])
    assert parse_keys([" F ", "j"]) == ("f", "j")


def _start(out: Path, pid: str, list_csv: Path, keys=("f", "j"), order="auto"):
    """Open a session and save its JSON as run-lab does once the refresh check passes."""
    rows = read_rows(list_csv, required=TRIAL_LIST_COLUMNS)
    session = open_session(out, pid, list_csv, rows, keys, order, "t0")
    if not session.record:
        session.record = new_record(session, pid, rows, list_csv, keys, TrialTiming())
        session.save()
    return session


def test_auto_key_order_alternates_for_any_id_scheme(lists, tmp_path):
    animal_keys = [_start(tmp_path, f"P{i:02d}", lists[0]).mapping["animal"] for i in range(1, 21)]
    assert animal_keys == ["f", "j"] * 10  # P01-P20 used to give 11/9 with runs of four
    record = json.loads((tmp_path / "sub-P03.json").read_text())
    assert record["key_order"] == "animal-first" and record["session_number"] == 3
    assert record["key_order_sessions_before"] == {"animal-first": 1, "animal-second": 1,
                                                   "unknown": 0}


def test_auto_key_order_balances_after_forced_orders_and_a_resume_keeps_its_own(lists, tmp_path):
    assert _start(tmp_path, "a", lists[0], order="animal-second").mapping["animal"] == "j"
    assert _start(tmp_path, "b", lists[0], order="animal-second").mapping["animal"] == "j"
    assert _start(tmp_path, "c", lists[0]).mapping["animal"] == "f"
    assert _start(tmp_path, "d", lists[0]).mapping["animal"] == "f"
    # The folder is now balanced 2/2, but c resumes with the order it started with.
    assert _start(tmp_path, "c", lists[0]).mapping == {"animal": "f", "non-animal": "j"}
    with pytest.raises(InputError, match="same --keys"):
        _start(tmp_path, "c", lists[0], order="animal-second")


def test_ids_differing_only_by_leading_zeros_or_case_are_refused(lists, tmp_path):
    _start(tmp_path, "2", lists[0])
    _start(tmp_path, "P01", lists[0])
    for pid, existing in (("02", "2"), ("002", "2"), ("P1", "P01"), ("p01", "P01")):
        with pytest.raises(InputError, match=f"already has participant {existing} "):
            _start(tmp_path, pid, lists[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub-2.json", "sub-P01.json"]
    assert _start(tmp_path, "2", lists[0]).record["participant"] == "2"  # the same id resumes
    assert _start(tmp_path, "20", lists[0]).mapping  # a different number is a different person


# -- stimulus files against the list's sha256 ------------------------------------------------

def _copy_lists(lists, tmp_path) -> Path:
    base = lists[0].parent.parent
    shutil.copytree(base, tmp_path / "copy")
    return tmp_path / "copy" / lists[0].parent.name / lists[0].name


def test_a_changed_stimulus_file_is_refused_by_name(lists, tmp_path):
    list_csv = _copy_lists(lists, tmp_path)
    rows = read_rows(list_csv, required=TRIAL_LIST_COLUMNS)
    assert "sha256" in rows[0]
    assert verify_stimuli(list_csv, rows) == len({r["file"] for r in rows})
    victim = (list_csv.parent / rows[3]["file"]).resolve()
    other = (list_csv.parent / rows[4]["file"]).resolve()
    victim.write_bytes(other.read_bytes())  # a swapped image
    with pytest.raises(InputError, match=f"{victim.name}: changed since"):
        verify_stimuli(list_csv, rows)


def _args(list_csv: Path, out: Path, pid: str = "1", *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run-lab")
    lab.add_arguments(parser)
    return parser.parse_args(["--list", str(list_csv), "--participant", pid, "--out", str(out),
                              "--no-fullscr", "--refresh-hz", "60", *extra])


def test_run_lab_refuses_a_changed_stimulus_before_any_window(lists, tmp_path, monkeypatch):
    list_csv = _copy_lists(lists, tmp_path)
    rows = read_rows(list_csv, required=TRIAL_LIST_COLUMNS)
    victim = (list_csv.parent / rows[0]["file"]).resolve()
    victim.write_bytes(victim.read_bytes()[:-10])  # a shrunk image
    monkeypatch.setattr(lab, "check_display", _no_window)
    with pytest.raises(InputError, match="changed since"):
        lab.main(_args(list_csv, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_list_without_sha256_runs_with_a_clear_warning(lists, tmp_path, monkeypatch, capsys):
    old = tmp_path / lists[0].name
    table = pd.read_csv(lists[0], dtype=str, keep_default_na=False)
    table.drop(columns="sha256").to_csv(old, index=False)
    text = old.read_text().replace(",../", f",{lists[0].parent.parent}/")
    old.write_text(text)
    monkeypatch.setattr(lab, "check_display", _no_window)
    with pytest.raises(InputError, match="no window in this test"):
        lab.main(_args(old, tmp_path / "out"))
    err = capsys.readouterr().err
    assert "warning:" in err and "no sha256 column" in err and "cannot be verified" in err


def _no_window(screen):
    raise InputError("no window in this test")


# -- where the runner may write, and a missing display ---------------------------------------

def test_out_that_is_a_file_is_refused(lists, tmp_path):
    out = tmp_path / "data.txt"
    out.write_text("not a folder")
    with pytest.raises(InputError, match="is a file, not a folder; choose another --out"):
        lab.main(_args(lists[0], out))
    assert out.read_text() == "not a folder"


def test_list_that_is_a_folder_is_refused(lists, tmp_path):
    with pytest.raises(InputError, match="is a folder; --list takes one list file"):
        lab.main(_args(lists[0].parent, tmp_path / "out"))


def test_no_display_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(InputError, match="no display: DISPLAY is not set"):
        check_display(0)
    monkeypatch.setenv("DISPLAY", ":4711")  # no server there
    with pytest.raises(InputError, match="no display: cannot open :4711"):
        check_display(0)


def test_run_lab_without_a_display_prints_one_error_line(lists, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    proc = subprocess.run([sys.executable, "-m", "experiment", "run-lab", "--list", str(lists[0]),
                           "--participant", "1", "--out", str(tmp_path / "out")],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[0]]
    assert proc.stderr.startswith("error: no display") and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_screen_the_display_lacks_is_refused():
    assert shutil.which("Xvfb"), "Xvfb is required (apt-get install xvfb)"
    proc = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "640x480x24", "-nolisten",
                             "tcp"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        number = proc.stdout.readline().strip()
        code = ("from experiment.lab_screen import check_display\n"
                "print(check_display(0))\ncheck_display(5)\n")
        run = subprocess.run([sys.executable, "-c", code],
                             env={**os.environ, "DISPLAY": f":{number}"},
                             cwd=Path(__file__).resolve().parents[1], capture_output=True,
                             text=True, timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert run.stdout.strip() == "1"
    assert "--screen 5: this display has 1 screen(s), numbered 0-0" in run.stderr


# -- a session run with a stand-in screen: interruptions and a torn row -----------------------

class _Win:
    def __init__(self):
        self.frameIntervals = [1 / 60] * 10
        self.recordFrameIntervals = False


class FakeScreen:
    """Stands in for LabScreen; ``on_message`` may raise what a real session would meet."""

    on_message = None

    def __init__(self, *args, **kwargs):
        self.win = _Win()
        self.keyboard_backend = "ptb"

    def measure_refresh(self):
        return dict(GOOD)

    def message(self, text, keys, auto_s):
        if FakeScreen.on_message:
            FakeScreen.on_message()

    def close(self):
        pass


def _fake_trial(screen, image, category, practice, mapping, timing, hz, fixation, on_onset=None):
    return {"response": category, "correct": 1, "timeout": 0, "rt_ms": 400.0,
            "fixation_ms": 1200.0, "frames_intended": 24, "frames_shown": 24, "dropped_frames": 0}


@pytest.fixture
def fake_screen(monkeypatch):
    monkeypatch.setattr(lab, "LabScreen", FakeScreen)
    monkeypatch.setattr(lab, "check_display", lambda screen: 1)
    monkeypatch.setattr(lab, "screen_pixels", lambda screen: (1920, 1080))
    monkeypatch.setattr(lab, "screen_info", lambda screen, fullscr: {"size": [800, 600]})
    monkeypatch.setattr(lab, "run_trial", _fake_trial)
    FakeScreen.on_message = None
    yield FakeScreen


def test_ctrl_c_is_recorded_as_an_interruption(lists, tmp_path, fake_screen):
    def ctrl_c():
        raise KeyboardInterrupt
    fake_screen.on_message = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        lab.main(_args(lists[0], tmp_path))
    run = json.loads((tmp_path / "sub-1.json").read_text())["runs"][-1]
    assert run["status"] == "interrupted (Ctrl-C)" and run["trials_written"] == 0


def test_sigterm_is_recorded_as_terminated(lists, tmp_path, fake_screen):
    fake_screen.on_message = lambda: os.kill(os.getpid(), signal.SIGTERM)
    assert lab.main(_args(lists[0], tmp_path)) == 128 + signal.SIGTERM
    run = json.loads((tmp_path / "sub-1.json").read_text())["runs"][-1]
    assert run["status"] == "terminated (SIGTERM)"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back


def test_a_row_torn_by_a_crash_is_set_aside_and_its_trial_written_once(lists, tmp_path,
                                                                       fake_screen):
    assert lab.main(_args(lists[0], tmp_path)) == 0
    csv_path = tmp_path / "sub-1.csv"
    whole = csv_path.read_bytes()
    lines = whole.splitlines(keepends=True)
    torn = lines[-1][:40]  # the crash came while the last trial's row was being written
    csv_path.write_bytes(b"".join(lines[:-1]) + torn)
    assert lab.main(_args(lists[0], tmp_path)) == 0
    table = pd.read_csv(csv_path)
    expected = read_rows(lists[0], required=TRIAL_LIST_COLUMNS)
    assert list(zip(table["practice"], table["trial"], strict=True)) == \
        [(int(r["practice"]), int(r["trial"])) for r in expected]  # each trial once, in order
    assert not table["observer_id"].isna().any()
    assert (tmp_path / "sub-1.csv.torn").read_bytes() == torn + b"\n"
    runs = json.loads((tmp_path / "sub-1.json").read_text())["runs"]
    assert runs[-1]["torn_row_set_aside"] == str(tmp_path / "sub-1.csv.torn")
    assert (runs[-1]["trials_written"] == 1
            and len(read_rows(csv_path, TRIAL_COLUMNS)) == len(expected))
