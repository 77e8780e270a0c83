"""Scripted participant for the virtual chinrest (@jspsych/plugin-virtual-chinrest) in
Playwright: drag the card to a known width, then press the space bar when the red ball is at
a known offset from the square, with the page's animation frames stepped by the script (so
the ball's position at each press is exact, not a race with the display)."""

from __future__ import annotations

import math

CARD_START_PX = 250       # the plugin's item_init_size: the card starts 250 CSS px wide
BALL_START_LEFT = 739     # parseInt(0.85 × (900 - 30) px): where each sweep starts
BALL_STEP_PX = 2          # the plugin moves the ball 2 px per animation frame
BALL_PX = 30
SQUARE_LEFT = 870         # 900 px content - the 30 px square

# requestAnimationFrame replaced by a queue the script steps (restored after the blind spot)
FAKE_RAF_JS = """() => {
  const q = new Map();
  let id = 0;
  window.__rafReal = [window.requestAnimationFrame, window.cancelAnimationFrame];
  window.requestAnimationFrame = (cb) => { id += 1; q.set(id, cb); return id; };
  window.cancelAnimationFrame = (i) => { q.delete(i); };
  window.__rafStep = (n) => {
    for (let k = 0; k < n; k += 1) {
      const now = [...q.values()];
      q.clear();
      for (const cb of now) cb(performance.now());
    }
  };
}"""
RESTORE_RAF_JS = """() => {
  [window.requestAnimationFrame, window.cancelAnimationFrame] = window.__rafReal;
}"""
CENTRE_JS = """(sel) => { const b = document.querySelector(sel).getBoundingClientRect();
  return b.left + b.width / 2; }"""


def card_steps(width_px: int) -> float:
    """Mouse travel (CSS px) that makes the card ``width_px`` wide: the plugin adds 2·dx."""
    return (width_px - CARD_START_PX) / 2


def ball_steps(card_width_px: int, distance_cm: float, blind_spot_deg: float = 13.5) -> int:
    """Frames of ball travel that put it where a participant at ``distance_cm`` loses it."""
    offset_px = distance_cm * math.tan(math.radians(blind_spot_deg)) * card_width_px / 8.56
    target_left = SQUARE_LEFT - offset_px
    return max(1, round((BALL_START_LEFT - target_left) / BALL_STEP_PX))


def plugin_distance_cm(card_width_px: int, square_centre: float, ball_centres: list[float],
                       blind_spot_deg: float = 13.5) -> float:
    """The plugin's formula: mean ball-square offset in mm at px/mm rounded to 2 decimals,
    divided by tan 13.5°, rounded to 0.01 mm; in cm."""
    def round2(x):
        return round(x + 1e-12, 2)
    px_per_mm = round2(card_width_px / 85.6)
    avg = round2(sum(round2(b) for b in ball_centres) / len(ball_centres))
    mm = (round2(square_centre) - avg) / px_per_mm / math.tan(math.radians(blind_spot_deg))
    return round2(mm) / 10


def do_card(page, width_px: int) -> None:
    """Drag the card's corner until the card is ``width_px`` CSS px wide, and accept."""
    handle = page.wait_for_selector("#jspsych-resize-handle").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + card_steps(width_px), y, steps=4)
    page.mouse.up()
    assert page.evaluate("document.querySelector('#item').getBoundingClientRect().width") \
        == width_px
    page.click("#end_resize_phase")


def do_blind_spot(page, steps: list[int]) -> dict:
    """One sweep per entry of ``steps``: space, the ball moved that many frames, space.
    Returns the square's centre and the ball's centre at each press (CSS px)."""
    page.wait_for_selector("#virtual-chinrest-circle")
    page.evaluate(FAKE_RAF_JS)
    square = page.evaluate(CENTRE_JS, "#virtual-chinrest-square")
    balls = []
    try:
        for n in steps:
            page.keyboard.press(" ")           # the sweep starts
            page.evaluate("(n) => window.__rafStep(n)", n)
            balls.append(page.evaluate(CENTRE_JS, "#virtual-chinrest-circle"))
            page.keyboard.press(" ")           # "it vanished"
    finally:
        page.evaluate(RESTORE_RAF_JS)
    return {"square": square, "balls": balls}


def calibrate(page, card_width_px: int = 324, distance_cm: float = 60.0, reps: int = 5) -> dict:
    """The whole chinrest as a participant with that card width and distance would do it
    (full screen first if asked); returns what do_blind_spot measured."""
    page.wait_for_selector("#jspsych-fullscreen-btn, #jspsych-resize-handle")
    if page.query_selector("#jspsych-fullscreen-btn"):
        page.click("#jspsych-fullscreen-btn")
    do_card(page, card_width_px)
    n = ball_steps(card_width_px, distance_cm)
    seen = do_blind_spot(page, [n] * reps)
    page.click("#distance-report #proceed")
    return seen
