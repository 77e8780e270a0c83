"""Full online sessions in Debian's Chromium: keys pressed through the page, rows checked in the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from experiment.online.build import build_site
from experiment.online.config import StudyConfig
from experiment.online.export import export_trials
from experiment.online.local_server import free_port, serve_in_thread
from experiment.online.sample_study import make_lists, make_stimulus_set
from experiment.online.server import create_app
from experiment.schema import TRIAL_COLUMNS, read_rows

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is a pinned requirement")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ADMIN = "admin-token-for-tests-0123456789"
KEYS = {"animal": "f", "non-animal": "j"}
# what the "participant" does on the n-th trial presented: a key, or None to let it time out
PATTERN = ["f", "j", None, "j", "f", "f"]

# the page's state, as one word, for the driver; handled screens are marked data-seen
STATE_JS = """() => {
  if (document.querySelector('#rc-done')) return 'done';
  const err = document.querySelector('.rc-error');
  if (err) return 'error:' + err.textContent;
  const st = document.querySelector('#rc-stage:not([data-seen])');
  if (st) return st.dataset.phase === 'stimulus' ? 'stimulus' : null;
  if (document.querySelector('#rc-stage')) return null;
  if (document.querySelector('#jspsych-fullscreen-btn')) return 'fullscreen';
  if (document.querySelector('#jspsych-html-keyboard-response-stimulus:not([data-seen])'))
    return 'space';
  if (document.querySelector('#rc-agree')) return 'consent';
  return null;
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("online")
    manifest = make_stimulus_set(root / "set", n_images=4)
    lists = make_lists(manifest, root / "lists.csv", n_lists=2, n_blocks=2, n_practice=1,
                       stimuli_dir=root / "set")
    config = StudyConfig(study_id="browser-test", lists=(), keys=KEYS, completion_code="DONE42")
    return build_site([lists], root / "set", root / "site", config)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium (.ci/run does)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def drive(page, presses: dict, stop_after: int | None = None, timeout_s: float = 90.0) -> str:
    """Answer screens until done (or until ``stop_after`` trials were answered); record presses by seq."""
    answered = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = page.wait_for_function(STATE_JS, polling="raf", timeout=30_000).json_value()
        if state.startswith("error:"):
            raise AssertionError(state)
        if state == "done":
            return state
        if state == "consent":
            page.click("#rc-agree")
            page.wait_for_selector("#rc-agree", state="detached")
        elif state == "fullscreen":
            page.click("#jspsych-fullscreen-btn")
            page.wait_for_selector("#jspsych-fullscreen-btn", state="detached")
        elif state == "space":
            page.eval_on_selector("#jspsych-html-keyboard-response-stimulus",
                                  "e => e.dataset.seen = '1'")
            page.keyboard.press(" ")
        elif state == "stimulus":
            seq = page.evaluate("window.rcStudy.currentSeq")
            key = PATTERN[len(presses) % len(PATTERN)]
            if key is not None:
                page.keyboard.press(key)
            page.eval_on_selector("#rc-stage", "e => e.dataset.seen = '1'")
            if key is None:  # the page must say "too slow" after the 550 ms window
                page.wait_for_selector("#rc-stage[data-phase='feedback']", timeout=5_000)
            presses[seq] = key
            answered += 1
            if stop_after is not None and answered >= stop_after:
                page.wait_for_function("s => window.rcStudy.lastFinished === s", arg=seq,
                                       timeout=10_000)
                return "stopped"
    raise AssertionError("session did not finish in time")


def check_rows(db: Path, tmp_path: Path, presses: dict, list_trials: list[dict]) -> list[dict]:
    """Exported rows: one per list trial, each matching the key pressed on it."""
    out = tmp_path / "trials.csv"
    n = export_trials(db, out)
    rows = read_rows(out, TRIAL_COLUMNS)
    assert n == len(rows) == len(list_trials)
    assert sorted(presses) == [t["seq"] for t in list_trials]
    response_of = {v: k for k, v in KEYS.items()}
    for t, row in zip(list_trials, rows, strict=True):
        key = presses[t["seq"]]
        assert (row["stimulus_id"], int(row["trial"]), int(row["block"])) == (
            t["stimulus_id"], t["trial"], t["block"])
        assert row["observer_type"] == "human" and row["runner"] == "web"
        if key is None:
            assert (row["response"], row["timeout"], row["rt_ms"], row["correct"]) == (
                "none", "1", "", "0")
        else:
            assert row["response"] == response_of[key] and row["timeout"] == "0"
            assert 0 < float(row["rt_ms"]) <= 550.0
            assert row["correct"] == str(int(response_of[key] == t["category"]))
        refresh = float(row["refresh_hz"])
        intended = int(row["frames_intended"])
        assert intended == round(0.400 * refresh)
        # the image may only overrun its frames when the browser dropped frames
        assert 0 <= int(row["frames_shown"]) - intended <= int(row["dropped_frames"])
        fixation_frames = float(row["fixation_ms"]) * refresh / 1000
        assert 1100 * refresh / 1000 - 1 <= fixation_frames
    return rows


def list_trials(site: Path, list_id: str) -> list[dict]:
    import json
    return json.loads((site / "lists" / f"{list_id}.json").read_text())["trials"]


def test_full_session_stores_each_press(site, browser, tmp_path):
    db = tmp_path / "study.sqlite"
    with serve_in_thread(create_app(site, db, ADMIN)) as url:
        page = browser.new_page()
        page.goto(url + "?PROLIFIC_PID=pp001&STUDY_ID=st1&SESSION_ID=se1")
        presses: dict = {}
        assert drive(page, presses) == "done"
        assert page.inner_text("#rc-code") == "DONE42"
        assert page.evaluate("window.rcStudy.state().queue.length") == 0
        page.close()
    rows = check_rows(db, tmp_path, presses, list_trials(site, "L0"))
    assert {(r["observer_id"], r["session_id"], r["list_id"]) for r in rows} == {
        ("pp001", "se1", "L0")}


def test_reload_mid_session_resumes(site, browser, tmp_path):
    db = tmp_path / "study.sqlite"
    with serve_in_thread(create_app(site, db, ADMIN)) as url:
        page = browser.new_page()
        page.goto(url)
        presses: dict = {}
        assert drive(page, presses, stop_after=2) == "stopped"
        first = dict(presses)
        page.reload()
        assert drive(page, presses) == "done"
        resumed = sorted(set(presses) - set(first))
        assert min(resumed) == max(first) + 1  # picked up right after the last trial done
        page.close()
    check_rows(db, tmp_path, presses, list_trials(site, "L0"))


def _start_server(site: Path, db: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiment", "serve", str(site), "--db", str(db),
         "--port", str(port), "--admin-token", ADMIN],
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def test_server_restart_mid_session_loses_nothing(site, browser, tmp_path):
    db, port = tmp_path / "study.sqlite", free_port()
    proc = _start_server(site, db, port)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?workerId=W1&assignmentId=A1&hitId=H1")
        presses: dict = {}
        drive(page, presses, stop_after=1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        drive(page, presses, stop_after=2)  # two trials while the server is down
        assert page.evaluate("window.rcStudy.state().queue.length") >= 2
        proc = _start_server(site, db, port)
        assert drive(page, presses) == "done"
        assert page.evaluate("window.rcStudy.state().queue.length") == 0
        page.close()
    finally:
        proc.kill()
        proc.wait(10)
    rows = check_rows(db, tmp_path, presses, list_trials(site, "L0"))
    assert {(r["observer_id"], r["session_id"]) for r in rows} == {("W1", "A1")}
