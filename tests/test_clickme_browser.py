"""The ClickMe game in Debian's Chromium: painting with the mouse, the partner answering in the
page (onnxruntime-web), rounds stored; a reload resumes; a killed server loses no acknowledged
round."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from experiment.online.build import read_page_module
from experiment.online.clickme_build import PAGE_CONFIG, build_game
from experiment.online.clickme_export import export_clicks
from experiment.online.clickme_rules import QUERY_FIELDS, ROUND_FIELDS
from experiment.online.serve import create_site_app
from stimuli.click_maps import read_clicks
from tests.support.data import IMAGENET_SAMPLE as SAMPLE
from tests.support.local_server import free_port, serve_in_thread

ADMIN = "admin-token-for-tests-0123456789"
# practice first, then the three images played: two animals, one object, all with their class
IMAGES = [("n01534433_junco.JPEG", 13, "animal"), ("n01491361_tiger_shark.JPEG", 3, "animal"),
          ("n01616318_vulture.JPEG", 23, "animal"), ("n03720891_maraca.JPEG", 641, "non-animal")]
SECONDS = 2.0

STATE_JS = """() => {
  if (document.querySelector('#cm-done')) return 'done';
  const err = document.querySelector('.cm-error');
  if (err) return 'error:' + err.textContent;
  if (document.querySelector('#cm-yes')) return 'choose:' + \
document.querySelector('#cm-yes').textContent;
  if (document.querySelector('#cm-go')) return 'go';
  if (document.querySelector('#cm-next')) return 'next';
  const g = document.querySelector('#cm-game');
  if (g && g.style.display !== 'none' && !g.dataset.painted) return 'round';
  return null;
}"""


def write_manifest(folder: Path) -> Path:
    lines = ["image,image_id,category,class_index"]
    for name, cls, cat in IMAGES:
        lines.append(f"{SAMPLE / name},{name.split('_')[0]},{cat},{cls}")
    path = folder / "build_manifest.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def partner(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("partner") / "partner.onnx"
    subprocess.run([sys.executable, "-m", "models", "export-partner", "--out", str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory, partner) -> Path:
    root = tmp_path_factory.mktemp("clickme")
    build_game(write_manifest(root), root / "site", partner, seconds=SECONDS,
               completion_code="CLICK42")
    return root / "site"


def paint(page) -> None:
    """Press and drag over the image for the round's time: a zig-zag of mouse moves."""
    box = page.locator("#cm-canvas").bounding_box()
    page.eval_on_selector("#cm-game", "e => e.dataset.painted = '1'")
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.down()
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < SECONDS + 0.3 and page.evaluate(
            "document.querySelector('#cm-game').style.display !== 'none'"):
        x = 20 + (k * 37) % 216
        y = 20 + (k * 13) % 216
        page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
        page.wait_for_timeout(20)
        k += 1
    page.mouse.up()
    page.wait_for_selector("#cm-game", state="hidden", timeout=10_000)
    page.eval_on_selector("#cm-game", "e => delete e.dataset.painted")


def drive(page, stop_after: int | None = None, delivered: bool = True,
          timeout_s: float = 120.0) -> str:
    """Play until done, or until ``stop_after`` rounds (practice excluded) were played (and,
    if ``delivered``, acknowledged by the server)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = page.wait_for_function(STATE_JS, polling="raf", timeout=60_000).json_value()
        if state.startswith("error:"):
            raise AssertionError(state)
        if state == "done":
            return state
        if state.startswith("choose:"):
            page.click("#cm-yes")
            page.wait_for_selector("#cm-yes", state="detached")
        elif state in ("go", "next"):
            page.click(f"#cm-{state}")
            page.wait_for_selector(f"#cm-{state}", state="detached")
        elif state == "round":
            paint(page)
            rounds = page.evaluate("window.cmGame.rounds")
            if stop_after is not None and rounds >= stop_after:
                if not delivered:
                    return "stopped"
                page.wait_for_function("() => window.cmGame.state().queue.length === 0",
                                       timeout=15_000)
                return "stopped"
    raise AssertionError("game did not finish in time")


def check_rounds(db: Path, out: Path, n: int) -> list:
    assert export_clicks(db, out) == n
    rounds = read_clicks(out)   # the maps command's own reader accepts the export
    assert len(rounds) == n
    for r in rounds:
        assert r.outcome in ("recognized", "timeout")
        assert len(r.path) >= 10   # painted for the whole round or until recognized
        assert (r.path[:, :2] >= 0).all() and (r.path[:, :2] < 256).all()
        assert r.path[-1, 2] <= SECONDS * 1000
    return rounds


def test_three_images_painted_answered_and_stored(site, browser, tmp_path):
    db = tmp_path / "game.sqlite"
    app = create_site_app(site, db, ADMIN)
    posted = []
    with serve_in_thread(app) as url:
        page = browser.new_page()
        page.on("request", lambda r: posted.append(r.post_data_json)
                if r.method == "POST" and r.url.endswith("/api/rounds") else None)
        page.goto(url + "?PROLIFIC_PID=P1&STUDY_ID=S&SESSION_ID=G1")
        assert drive(page) == "done"
        assert page.text_content("#cm-code") == "CLICK42"
        queries = page.evaluate("window.cmGame.queries")
        page.close()
    # the page posts exactly the fields clickme_rules.py accepts (from game-config.js)
    assert sorted(b["position"] for b in posted) == [0, 1, 2]
    assert all(set(b) == ROUND_FIELDS for b in posted)
    assert all(set(q) == QUERY_FIELDS for b in posted for q in b["queries"])
    assert read_page_module(site / "public" / PAGE_CONFIG) == {
        "round_fields": sorted(ROUND_FIELDS), "query_fields": sorted(QUERY_FIELDS)}
    rounds = check_rounds(db, tmp_path / "clicks.csv", 3)
    assert {r.player_id for r in rounds} == {"P1"}
    assert {r.image_id for r in rounds} == {"n01491361", "n01616318", "n03720891"}
    stored = app.state.game.rounds
    n_queries = sum(len(q) for q in (json.loads(x) for (x,) in stored._conn().execute(
        "SELECT queries FROM clickme_rounds")))
    assert n_queries >= 3      # the partner answered on every image
    assert queries >= n_queries   # the practice round's queries are the page's only extra ones


def test_reload_mid_game_resumes(site, browser, tmp_path):
    db = tmp_path / "game.sqlite"
    with serve_in_thread(create_site_app(site, db, ADMIN)) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(url + "?PROLIFIC_PID=P2&STUDY_ID=S&SESSION_ID=G2")
        assert drive(page, stop_after=1) == "stopped"
        first = page.evaluate("window.cmGame.lastPosition")
        page.reload()
        assert drive(page) == "done"
        assert page.evaluate("window.cmGame.rounds") == 2   # the resumed page plays the rest
        assert first not in page.evaluate(
            "window.cmGame.session.rounds.filter(r => !window.cmGame.session.done.includes("
            "r.position)).map(r => r.position)")
        context.close()
    check_rounds(db, tmp_path / "clicks.csv", 3)


def _start_server(site: Path, db: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiment", "serve", str(site), "--db", str(db),
         "--port", str(port), "--admin-token", ADMIN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def test_server_sigkill_loses_no_acknowledged_round(site, browser, tmp_path):
    db, port = tmp_path / "game.sqlite", free_port()
    proc = _start_server(site, db, port)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?PROLIFIC_PID=P3&STUDY_ID=S&SESSION_ID=G3")
        assert drive(page, stop_after=1) == "stopped"   # round 1 acknowledged
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert drive(page, stop_after=2, delivered=False) == "stopped"  # server down
        assert page.evaluate("window.cmGame.state().queue.length") == 1
        proc = _start_server(site, db, port)
        assert drive(page) == "done"                     # round 2 retried, round 3 played
    finally:
        proc.kill()
        proc.wait()
    rounds = check_rounds(db, tmp_path / "clicks.csv", 3)
    assert {r.player_id for r in rounds} == {"P3"}
