"""The virtual chinrest and the stimulus size online, in Debian's Chromium: scripted card and
blind-spot responses -> px/cm and distance as the script implies; the image drawn at the
study's angle (CSS px = device px / devicePixelRatio); participants who decline or cannot
be calibrated stopped before a list slot; the JS geometry and filter against the Python."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiment.online.build import build_site
from experiment.online.config import StudyConfig
from experiment.online.export import export_trials
from experiment.online.server import create_app
from experiment.schema import OPTIONAL_TRIAL_COLUMNS, TRIAL_COLUMNS, read_rows
from experiment.visual_angle import deg_to_px, px_to_deg, whole_px
from tests.support.chinrest import calibrate, plugin_distance_cm
from tests.support.local_server import serve_in_thread
from tests.support.online_driver import drive
from tests.support.sample_study import make_lists, make_stimulus_set

ADMIN = "admin-token-for-tests-0123456789"
KEYS = {"animal": "f", "non-animal": "j"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chinrest")
    manifest = make_stimulus_set(root / "set", n_images=2)
    lists = make_lists(manifest, root / "lists.csv", n_lists=2, n_blocks=1, n_practice=1,
                       stimuli_dir=root / "set")
    config = StudyConfig(study_id="chinrest-test", lists=(), keys=KEYS, completion_code="C1",
                         stimulus_deg=8.0)
    return build_site([lists], root / "set", root / "site", config)


def consent(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#rc-agree")
    page.click("#rc-agree")


def first_stimulus(page) -> dict:
    """Answer screens up to the first trial's image; its canvas's sizes."""
    while True:
        state = page.wait_for_function("""() => {
          if (document.querySelector('#rc-stage[data-phase="stimulus"]')) return 'stimulus';
          if (document.querySelector('#jspsych-fullscreen-btn')) return 'fullscreen';
          const s = document.querySelector(
            '#jspsych-html-keyboard-response-stimulus:not([data-seen])');
          return s ? 'space' : null; }""", polling="raf", timeout=30_000).json_value()
        if state == "fullscreen":
            page.click("#jspsych-fullscreen-btn")
        elif state == "space":
            page.eval_on_selector("#jspsych-html-keyboard-response-stimulus",
                                  "e => e.dataset.seen = '1'")
            page.keyboard.press(" ")
        else:
            return page.evaluate("""() => { const c = document.querySelector('#rc-stimulus');
              const b = c.getBoundingClientRect();
              return {css_w: b.width, css_h: b.height, left: b.left, top: b.top,
                      w: c.width, h: c.height, dpr: window.devicePixelRatio}; }""")


@pytest.mark.parametrize("dpr", [1, 2])
def test_chinrest_measures_what_the_script_implies_and_the_image_is_drawn_at_8_degrees(
        site, browser, tmp_path, dpr):
    db = tmp_path / "study.sqlite"
    app = create_app(site, db, ADMIN)
    with serve_in_thread(app) as url:
        context = browser.new_context(device_scale_factor=dpr,
                                      viewport={"width": 1280, "height": 720})
        page = context.new_page()
        consent(page, url + f"?PROLIFIC_PID=cal{dpr}")
        seen = calibrate(page, card_width_px=324, distance_cm=60.0)
        page.wait_for_function("() => window.rcStudy && window.rcStudy.session")
        chinrest = page.evaluate("window.rcStudy.chinrest")
        size = first_stimulus(page)
        context.close()
    # px/cm: the card's width / 8.56 cm; distance: the plugin's formula on the ball positions
    ppcm = 324 / 8.56
    distance = plugin_distance_cm(324, seen["square"], seen["balls"])
    assert chinrest["item_width_px"] == 324
    assert chinrest["view_dist_mm"] / 10 == pytest.approx(distance, abs=0.001)
    assert distance == pytest.approx(60.0, rel=0.01)  # the script sat at 60 cm
    stored = json.loads(app.state.store._conn().execute(
        "SELECT calibration FROM sessions").fetchone()[0])
    assert stored["px_per_cm"] == pytest.approx(ppcm, rel=1e-12)
    assert stored["distance_cm"] == pytest.approx(distance, abs=0.001)
    assert stored["dpr"] == dpr
    # 8° at that distance: 2·D·tan(4°) cm, in device pixels, rounded; CSS px = device / dpr
    drawn = whole_px(deg_to_px(8.0, distance, ppcm * dpr))
    assert stored["drawn_px"] == drawn
    assert stored["stimulus_deg"] == pytest.approx(px_to_deg(drawn, distance, ppcm * dpr))
    assert abs(stored["stimulus_deg"] - 8.0) < 0.5 / (ppcm * dpr) * 2  # within half a pixel
    assert (size["w"], size["h"]) == (drawn, drawn)
    assert size["css_w"] == pytest.approx(drawn / dpr, abs=1e-6)
    assert size["css_h"] == pytest.approx(drawn / dpr, abs=1e-6)
    # on whole device pixels, so the compositor copies it 1:1
    assert (size["left"] * dpr) == pytest.approx(round(size["left"] * dpr), abs=1e-6)
    assert (size["top"] * dpr) == pytest.approx(round(size["top"] * dpr), abs=1e-6)


def test_a_whole_session_records_the_angle_on_every_trial(site, browser, tmp_path):
    db = tmp_path / "study.sqlite"
    with serve_in_thread(create_app(site, db, ADMIN)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(url + "?PROLIFIC_PID=whole1")
        assert drive(page, {}) == "done"
        page.close()
    out = tmp_path / "trials.csv"
    export_trials(db, out)
    rows = read_rows(out, TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS)
    angles = {r["stimulus_deg"] for r in rows}
    assert len(rows) == 3 and len(angles) == 1
    assert float(angles.pop()) == pytest.approx(8.0, abs=0.02)
    sessions = tmp_path / "sessions.csv"
    export_trials(db, sessions, table="sessions")
    (s,) = read_rows(sessions, ("observer_id", "px_per_cm", "distance_cm", "stimulus_deg"))
    assert s["observer_id"] == "whole1" and float(s["px_per_cm"]) == pytest.approx(324 / 8.56)


@pytest.mark.parametrize("viewport,card,distance,reason", [
    ({"width": 1280, "height": 500}, 324, 100.0, "screen_too_small"),  # 8° at 1 m: 529 px
    ({"width": 1280, "height": 720}, 100, 60.0, "implausible_calibration"),  # 11.7 px/cm
    ({"width": 1280, "height": 720}, 324, 20.0, "implausible_calibration"),  # 20 cm away
])
def test_a_participant_who_cannot_be_calibrated_is_stopped_without_a_list_slot(
        site, browser, tmp_path, viewport, card, distance, reason):
    app = create_app(site, tmp_path / "study.sqlite", ADMIN)
    with serve_in_thread(app) as url:
        page = browser.new_page(viewport=viewport)
        consent(page, url + "?PROLIFIC_PID=out1")
        calibrate(page, card_width_px=card, distance_cm=distance)
        text = page.wait_for_selector("#rc-screened-out").inner_text()
        assert "cannot go on" in text
        assert page.evaluate("window.rcStudy.session") is None
        page.close()
    store = app.state.store
    assert store.list_counts() == {}                       # no slot used
    assert store.screen_out_counts() == {reason: 1}        # counted
    (row,) = store.screen_out_rows()
    assert row["observer_id"] == "out1" and row["source"] == "prolific"
    assert json.loads(row["detail"])["card_width_px"] == card


def test_declining_consent_ends_without_a_list_slot_and_is_counted(site, browser, tmp_path):
    app = create_app(site, tmp_path / "study.sqlite", ADMIN)
    with serve_in_thread(app) as url:
        page = browser.new_page()
        page.goto(url)
        page.click("#rc-decline")
        assert "chose not to take part" in page.wait_for_selector("#rc-declined").inner_text()
        assert page.query_selector("#jspsych-resize-handle") is None  # no chinrest either
        page.close()
    assert app.state.store.list_counts() == {}
    assert app.state.store.screen_out_counts() == {"declined": 1}


# ---- the page's geometry and filter against the Python --------------------------------------

GEOMETRY_JS = """async () => {
  const g = await import('./visual-angle.js');
  const ppcm = 1920 / 53;
  return {
    size_cm: g.sizeCm(8, 57), deg_to_px: g.degToPx(8, 57, ppcm),
    px_to_deg_289: g.pxToDeg(289, 57, ppcm), px_to_deg_256: g.pxToDeg(256, 57, ppcm),
    angle_1cm: g.angleDeg(1.0, 57), whole: [288.5, 289.49, 2.5, 3.5].map(g.wholePx),
    card: g.cardPxPerCm(323.6), distance: g.distanceFromEccentricity(14.4),
    plan: g.planSize(8, 57, ppcm, 1), plan2: g.planSize(8, 57, ppcm / 2, 2),
  };
}"""


def test_the_page_geometry_matches_the_hand_values(site, browser, tmp_path):
    """The hand values of tests/test_visual_angle.py (experiment/visual_angle.py), in JS."""
    with serve_in_thread(create_app(site, tmp_path / "g.sqlite", ADMIN)) as url:
        page = browser.new_page()
        page.goto(url + "index.html")
        got = page.evaluate(GEOMETRY_JS)
        page.close()
    assert got["size_cm"] == pytest.approx(7.97166, abs=1e-5)
    assert got["deg_to_px"] == pytest.approx(288.785, abs=1e-3)
    assert got["px_to_deg_289"] == pytest.approx(8.00595, abs=1e-5)
    assert got["px_to_deg_256"] == pytest.approx(7.09426, abs=1e-5)
    assert got["angle_1cm"] == pytest.approx(1.00516, abs=1e-5)
    assert got["whole"] == [289, 289, 3, 4]
    assert got["card"] == pytest.approx(37.80, abs=0.01)
    assert got["distance"] == pytest.approx(59.98, abs=0.005)
    assert got["plan"] == {"drawnPx": 289, "cssPx": 289,
                           "stimulusDeg": pytest.approx(8.00595, abs=1e-5)}
    # CSS px per cm halves at devicePixelRatio 2: the same device pixels, half the CSS px
    assert got["plan2"]["drawnPx"] == 289 and got["plan2"]["cssPx"] == 144.5
    for k in ("size_cm", "deg_to_px", "px_to_deg_289"):
        assert math.isfinite(got[k])


RESAMPLE_JS = """async ([pixels, w, h, ow, oh]) => {
  const { resampleLanczos } = await import('./resample.js');
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < w * h; i += 1) {
    for (let c = 0; c < 3; c += 1) rgba[i * 4 + c] = pixels[i * 3 + c];
    rgba[i * 4 + 3] = 255;
  }
  return Array.from(resampleLanczos(rgba, w, h, ow, oh));
}"""


@pytest.mark.parametrize("size,out", [((256, 256), (302, 302)), ((256, 256), (200, 200)),
                                      ((40, 30), (97, 73)), ((64, 64), (64, 37))])
def test_the_page_scales_images_as_pillow_lanczos_does(site, browser, tmp_path, size, out):
    """The lab's filter (Pillow LANCZOS) and the page's give the same pixels."""
    rng = np.random.default_rng(sum(size) + sum(out))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[: size[1] // 2, : size[0] // 2] = 0      # hard edges: ringing, clipping at 0/255
    pixels[size[1] // 2:, size[0] // 2:] = 255
    want = np.asarray(Image.fromarray(pixels).resize(out, Image.Resampling.LANCZOS))
    with serve_in_thread(create_app(site, tmp_path / "r.sqlite", ADMIN)) as url:
        page = browser.new_page()
        page.goto(url + "index.html")
        got = page.evaluate(RESAMPLE_JS, [pixels.reshape(-1).tolist(), *size, *out])
        page.close()
    got = np.asarray(got, dtype=np.int16).reshape(out[1], out[0], 4)
    assert (got[..., 3] == 255).all()
    diff = np.abs(got[..., :3] - want.astype(np.int16))
    assert diff.max() == 0, f"{(diff > 0).sum()} of {diff.size} values differ"


SEEN_JS = """window.__seen = [];
new MutationObserver(() => {
  for (const sel of ['#jspsych-html-keyboard-response-stimulus', '#rc-practice-feedback',
                     '#rc-consent-text', '#rc-debrief']) {
    const el = document.querySelector(sel);
    if (el && el.textContent.trim() && getComputedStyle(el).visibility !== 'hidden') {
      const t = sel + ': ' + el.textContent.trim();
      if (window.__seen[window.__seen.length - 1] !== t) window.__seen.push(t);
    }
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


def test_practice_repeats_below_the_criterion_with_the_labs_texts_and_background(
        browser, tmp_path):
    manifest = make_stimulus_set(tmp_path / "set", n_images=2)
    lists = make_lists(manifest, tmp_path / "lists.csv", n_lists=1, n_blocks=1, n_practice=1,
                       stimuli_dir=tmp_path / "set")
    config = StudyConfig(study_id="practice", lists=(), keys=KEYS, stimulus_deg=8.0,
                         practice_criterion=1.0, practice_max_rounds=2,
                         background="#808080", text_colour="#000000",
                         texts={"consent": "<p>Lab consent, ethics 42.</p>",
                                "instructions": "<p>Lab instructions.</p>",
                                "debrief": "<p>Lab debriefing.</p>"})
    site = build_site([lists], tmp_path / "set", tmp_path / "site", config)
    db = tmp_path / "study.sqlite"
    with serve_in_thread(create_app(site, db, ADMIN)) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.add_init_script(SEEN_JS)
        page.goto(url + "?PROLIFIC_PID=pr1")
        # the practice image is an animal: wrong in round 1 (0 % < 100 %), right in round 2
        assert drive(page, {}, pattern=["j", "f", "f", "j"]) == "done"
        seen = page.evaluate("window.__seen")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.close()
    assert background == "rgb(128, 128, 128)"
    assert "#rc-consent-text: Lab consent, ethics 42." in seen
    assert any(s.startswith("#jspsych-html-keyboard-response-stimulus: Lab instructions.")
               for s in seen)
    feedback = [s for s in seen if s.startswith("#rc-practice-feedback")]
    assert feedback == ["#rc-practice-feedback: Wrong", "#rc-practice-feedback: Correct!"]
    assert any("Practice: 0 % correct; 100 % is needed" in s for s in seen)
    assert "#rc-debrief: Lab debriefing." in seen
    out = tmp_path / "trials.csv"
    export_trials(db, out)
    rows = read_rows(out, TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS)
    assert [(r["practice"], r["practice_round"], r["response"]) for r in rows] == [
        ("1", "1", "non-animal"), ("1", "2", "animal"),
        ("0", "", rows[2]["response"]), ("0", "", rows[3]["response"])]
