"""A scripted participant for the study page in Playwright: answers every screen (consent,
full screen, the virtual chinrest, space-bar screens, the resume question, pauses) and
presses keys on trials, recording them by seq."""

from __future__ import annotations

import time

from tests.support.chinrest import calibrate

KEYS = {"animal": "f", "non-animal": "j"}
# what the "participant" does on the n-th trial presented: a key, or None to let it time out
PATTERN = ["f", "j", None, "j", "f", "f"]

# the page's state, as one word, for the driver; handled screens are marked data-seen
STATE_JS = """() => {
  if (document.querySelector('#rc-done')) return 'done';
  if (document.querySelector('#rc-resume')) return 'resume';
  const err = document.querySelector('.rc-error');
  if (err) return 'error:' + err.textContent;
  if (document.querySelector('#rc-stage[data-phase="interrupted"]')) return 'paused';
  const st = document.querySelector('#rc-stage:not([data-seen])');
  if (st) return st.dataset.phase === 'stimulus' ? 'stimulus' : null;
  if (document.querySelector('#rc-stage')) return null;
  if (document.querySelector('#jspsych-fullscreen-btn')) return 'fullscreen';
  if (document.querySelector('#jspsych-html-keyboard-response-stimulus:not([data-seen])'))
    return 'space';
  if (document.querySelector('#rc-agree')) return 'consent';
  if (document.querySelector('#jspsych-resize-handle')) return 'chinrest';
  return null;
}"""


def drive(page, presses: dict, stop_after: int | None = None, timeout_s: float = 90.0,
          interrupt=None, pattern: list | None = None) -> str:
    """Answer screens until done (or until ``stop_after`` trials were answered); record presses
    by seq.

    ``interrupt(page, n)``, if given, runs when the n-th trial's image is up; when it returns
    True the trial must end interrupted (the pause screen) and is recorded as "interrupted".
    ``pattern``: the keys for the trials in the order they are shown (default: PATTERN by
    trials recorded).
    """
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
        elif state == "chinrest":  # a 324 px card (37.85 px/cm), sitting 60 cm away
            calibrate(page)
            page.wait_for_selector("#jspsych-resize-handle", state="detached")
        elif state == "fullscreen":
            page.click("#jspsych-fullscreen-btn")
            page.wait_for_selector("#jspsych-fullscreen-btn", state="detached")
        elif state == "space":
            page.eval_on_selector("#jspsych-html-keyboard-response-stimulus",
                                  "e => e.dataset.seen = '1'")
            page.keyboard.press(" ")
        elif state == "resume":
            page.click("#rc-resume")
            page.wait_for_selector("#rc-resume", state="detached")
        elif state == "paused":
            page.keyboard.press(" ")
            page.wait_for_selector("#rc-stage[data-phase='interrupted']", state="detached")
        elif state == "stimulus" and interrupt is not None and interrupt(page, len(presses)):
            seq = page.evaluate("window.rcStudy.currentSeq")
            page.wait_for_selector("#rc-stage[data-phase='interrupted']", timeout=5_000)
            presses[seq] = "interrupted"
        elif state == "stimulus":
            seq = page.evaluate("window.rcStudy.currentSeq")
            keys = pattern or PATTERN
            key = keys[answered % len(keys)] if pattern else keys[len(presses) % len(keys)]
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
