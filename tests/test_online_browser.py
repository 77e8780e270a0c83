"""Full online sessions in Debian's Chromium: keys pressed through the page, rows checked in the
database."""

from __future__ import annotations

import os
import re
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
from experiment.online.server import create_app
from experiment.online.validation import TRIAL_FIELDS
from experiment.schema import OPTIONAL_TRIAL_COLUMNS, TRIAL_COLUMNS, read_rows
from tests.support.local_server import free_port, serve_in_thread
from tests.support.online_driver import KEYS, drive
from tests.support.sample_study import make_lists, make_stimulus_set

ADMIN = "admin-token-for-tests-0123456789"
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("online")
    manifest = make_stimulus_set(root / "set", n_images=4)
    lists = make_lists(manifest, root / "lists.csv", n_lists=2, n_blocks=2, n_practice=1,
                       stimuli_dir=root / "set")
    config = StudyConfig(study_id="browser-test", lists=(), keys=KEYS, completion_code="DONE42",
                         stimulus_deg=8.0)
    return build_site([lists], root / "set", root / "site", config)


def check_rows(db: Path, tmp_path: Path, presses: dict, list_trials: list[dict]) -> list[dict]:
    """Exported rows: one per list trial, each matching the key pressed on it."""
    out = tmp_path / "trials.csv"
    n = export_trials(db, out)
    rows = read_rows(out, TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS)
    assert n == len(rows) == len(list_trials)
    assert sorted(presses) == [t["seq"] for t in list_trials]
    response_of = {v: k for k, v in KEYS.items()}
    for t, row in zip(list_trials, rows, strict=True):
        key = presses[t["seq"]]
        assert (row["stimulus_id"], int(row["trial"]), int(row["block"])) == (
            t["stimulus_id"], t["trial"], t["block"])
        assert row["observer_type"] == "human" and row["runner"] == "web"
        assert row["interrupted"] == str(int(key == "interrupted"))
        if key == "interrupted":
            continue  # its timing is void by definition; the analysis drops it
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
    posted = []
    with serve_in_thread(create_app(site, db, ADMIN)) as url:
        page = browser.new_page()
        page.on("request", lambda r: posted.append(r.post_data_json)
                if r.method == "POST" and r.url.endswith("/api/trials") else None)
        page.goto(url + "?PROLIFIC_PID=pp001&STUDY_ID=st1&SESSION_ID=se1")
        presses: dict = {}
        assert drive(page, presses) == "done"
        assert page.inner_text("#rc-code") == "DONE42"
        assert page.evaluate("window.rcStudy.state().queue.length") == 0
        page.close()
    rows = check_rows(db, tmp_path, presses, list_trials(site, "L0"))
    assert {(r["observer_id"], r["session_id"], r["list_id"]) for r in rows} == {
        ("pp001", "se1", "L0")}
    # the page posts exactly the fields validation.py accepts (from study-config.js), each once
    assert sorted(b["seq"] for b in posted) == sorted(presses)
    assert all(set(b) == TRIAL_FIELDS for b in posted)


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


# ---- issue 12: a lost start reply (item 12), a hidden tab (13), the page's failure paths (26)

def test_lost_session_reply_gets_the_same_session_back(site, browser, tmp_path):
    db = tmp_path / "study.sqlite"
    replies = []

    def lose_first_reply(route):
        response = route.fetch()  # the server has assigned and committed the session
        replies.append(response.status)
        if len(replies) == 1:
            route.abort("connectionreset")  # ... but the page never hears of it
        else:
            route.fulfill(response=response)

    app = create_app(site, db, ADMIN)
    with serve_in_thread(app) as url:
        page = browser.new_page()
        page.route("**/api/session", lose_first_reply)
        page.goto(url + "?PROLIFIC_PID=lost01&STUDY_ID=st1&SESSION_ID=se9")
        presses: dict = {}
        assert drive(page, presses) == "done"
        assert page.inner_text("#rc-code") == "DONE42"
        page.close()
    assert replies == [201, 200]  # the retry got the session the lost reply carried
    assert app.state.store.list_counts() == {"L0": 1}
    rows = check_rows(db, tmp_path, presses, list_trials(site, "L0"))
    assert {(r["observer_id"], r["session_id"]) for r in rows} == {("lost01", "se9")}


HIDE_JS = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
  delete document.visibilityState;  // back in front; the trial was hidden meanwhile
}"""
FREEZE_JS = "() => { const t = performance.now(); while (performance.now() - t < 900) {} }"


def test_hidden_or_frozen_tab_marks_the_trial_and_the_study_finishes(site, browser, tmp_path):
    db = tmp_path / "study.sqlite"
    done = []

    def hide_then_freeze(page, n):
        if n in (1, 3):  # the 2nd trial's tab is hidden, the 4th one's page stalls
            page.evaluate(HIDE_JS if n == 1 else FREEZE_JS)
            done.append(n)
            return True
        return False

    with serve_in_thread(create_app(site, db, ADMIN)) as url:
        page = browser.new_page()
        page.goto(url + "?PROLIFIC_PID=hid01")
        presses: dict = {}
        assert drive(page, presses, interrupt=hide_then_freeze) == "done"
        assert page.inner_text("#rc-code") == "DONE42"
        page.close()
    rows = check_rows(db, tmp_path, presses, list_trials(site, "L0"))
    assert done == [1, 3] and [r["interrupted"] for r in rows].count("1") == 2


def test_second_anonymous_person_does_not_resume_the_first(site, browser, tmp_path):
    db = tmp_path / "study.sqlite"
    app = create_app(site, db, ADMIN)
    with serve_in_thread(app) as url:
        context = browser.new_context()  # one browser profile, two people
        first = context.new_page()
        first.goto(url)
        drive(first, {}, stop_after=1)
        first_id = first.evaluate("window.rcStudy.session.observer_id")
        first.close()
        second = context.new_page()
        second.goto(url)
        second.wait_for_selector("#rc-new")
        second.click("#rc-new")
        second.wait_for_selector("#rc-agree")  # a new person consents anew
        drive(second, {}, stop_after=1)
        second_id = second.evaluate("window.rcStudy.session.observer_id")
        second.close()
        context.close()
    assert first_id != second_id and first_id.startswith("anon-")
    assert app.state.store.list_counts() == {"L0": 1, "L1": 1}


def test_full_storage_does_not_stop_the_study(site, browser, tmp_path):
    db = tmp_path / "study.sqlite"
    with serve_in_thread(create_app(site, db, ADMIN)) as url:
        page = browser.new_page()
        page.add_init_script("Storage.prototype.setItem = function () { throw new "
                             "DOMException('full', 'QuotaExceededError'); };")
        page.goto(url + "?PROLIFIC_PID=full01")
        presses: dict = {}
        assert drive(page, presses) == "done"
        assert page.evaluate("window.rcStudy.storageOk()") is False
        page.close()
    check_rows(db, tmp_path, presses, list_trials(site, "L0"))


def test_unknown_session_stops_with_what_to_do(site, browser, tmp_path):
    """A database reset mid-study: the server answers 401; the page must say so, not spin."""
    with serve_in_thread(create_app(site, tmp_path / "study.sqlite", ADMIN)) as url:
        page = browser.new_page()
        page.goto(url + "?PROLIFIC_PID=gone01")
        drive(page, {}, stop_after=1)
        page.route(re.compile(r"/api/(trials|complete)$"), lambda route: route.fulfill(
            status=401, content_type="application/json",
            body='{"error": "unknown session token"}'))
        with pytest.raises(AssertionError, match="no longer recognises your session"):
            drive(page, {}, timeout_s=30)
        assert "gone01" in page.inner_text("#rc-stopped")
        page.close()


def test_image_error_shows_the_url_as_text(site, browser):
    harness = """<!DOCTYPE html><div id="t"></div>
<script src="vendor/jspsych.js"></script><script src="plugin-rapid-categorization.js"></script>
<script>initJsPsych({display_element: "t"}).run([{type: jsPsychRapidCategorization,
  stimulus: "stimuli/none.png?<img src=x onerror=window.pwned=1>", refresh_hz: 60,
  fixation_frames: 66, stimulus_frames: 24, window_ms: 550, feedback_frames: 60,
  choices: {f: "animal", j: "non-animal"}}]);
</script>"""
    with serve_in_thread(create_app(site, site.parent / "h.sqlite", ADMIN)) as url:
        page = browser.new_page()
        page.route("**/harness.html", lambda route: route.fulfill(
            status=200, content_type="text/html", body=harness))
        page.goto(url + "harness.html")
        error = page.wait_for_selector(".rc-error")
        assert "none.png?<img src=x onerror=window.pwned=1>" in error.inner_text()
        assert page.evaluate("document.querySelectorAll('#t img').length") == 0
        assert page.evaluate("window.pwned") is None
        page.close()
