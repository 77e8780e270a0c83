"""The PsychoPy side of the lab runner: window, refresh check, frame pacing, keyboard, one trial.

Every duration is a whole number of frames at the measured refresh rate; the stimulus
onset timestamp comes from the flip itself (``callOnFlip``), and what was really shown is
read back from ``win.frameIntervals``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from experiment.paradigm import TrialTiming
from suite.errors import InputError

PLAUSIBLE_HZ = (50.0, 250.0)
MAX_JITTER_MS = 1.0  # SD of frame intervals a synced display stays well under


class QuitRequested(Exception):
    """The participant or experimenter pressed Escape."""


def check_display(screen: int) -> int:
    """Connect to the display and check ``screen`` exists there; returns the number of screens.

    Done before PsychoPy is imported: its import opens a window, so with no display it
    would fail with a pyglet traceback instead of one clear error.
    """
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise InputError("no display: DISPLAY is not set; run-lab needs a screen - run it from the "
                         "lab computer's desktop session (or under Xvfb for tests, see "
                         "docs/experiment.md)")
    try:
        import pyglet

        canvas = getattr(pyglet, "canvas", None) or pyglet.display
        screens = canvas.get_display().get_screens()
    except Exception as err:  # pyglet's NoSuchDisplayException and platform variants
        raise InputError(f"no display: cannot open {os.environ.get('DISPLAY', 'the display')} "
                         f"({err}); check the lab computer's display "
                         "(or start Xvfb for tests)") from None
    if screen >= len(screens):
        raise InputError(f"--screen {screen}: this display has {len(screens)} screen(s), "
                         f"numbered 0-{len(screens) - 1}")
    return len(screens)


def screen_pixels(screen: int) -> tuple[int, int]:
    """Width and height in pixels of display screen ``screen`` (call ``check_display`` first)."""
    import pyglet

    canvas = getattr(pyglet, "canvas", None) or pyglet.display
    found = canvas.get_display().get_screens()[screen]
    return int(found.width), int(found.height)


def aligned_centre(window_px: tuple[int, int], image_px: tuple[int, int]) -> tuple[float, float]:
    """Centre (PsychoPy ``pix`` units, origin mid-window, y up) that puts an image's edges on
    whole pixels, so each image pixel covers exactly one screen pixel."""
    (ww, wh), (iw, ih) = window_px, image_px
    left, top = (ww - iw) // 2, (wh - ih) // 2
    return left + iw / 2 - ww / 2, wh / 2 - (top + ih / 2)


def scaled_image(path: str, width_px: int | None):
    """The image at ``path`` as RGB, resized to ``width_px`` wide (height in proportion,
    rounded half up) with Pillow's Lanczos filter; its own size when ``width_px`` is None."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
    if width_px is not None and width_px != im.size[0]:
        height = int(np.floor(im.size[1] * width_px / im.size[0] + 0.5))
        im = im.resize((width_px, height), Image.Resampling.LANCZOS)
    return im


def _pyglet_import_guard() -> None:
    # PsychoPy's ptb keyboard needs the psychtoolbox binary; import it first so a missing
    # libjack or libusb surfaces as a clear error instead of a silent event-module fallback.
    try:
        import psychtoolbox  # noqa: F401
    except Exception as err:  # the binary raises OSError/ImportError variants
        raise InputError(f"psychtoolbox cannot load ({err}); install libjack-jackd2-0 "
                         "(apt) so PsychoPy's psychtoolbox keyboard works") from None


class LabScreen:
    """A full-screen PsychoPy window (white unless told) with a psychtoolbox keyboard and
    optional frame pacing; images drawn one image pixel per screen pixel."""

    def __init__(self, fullscr: bool, size: tuple[int, int], screen: int, pace_hz: float | None,
                 allow_keyboard_fallback: bool, background: tuple[int, int, int] = (255, 255, 255),
                 text_rgb: tuple[int, int, int] = (0, 0, 0)):
        _pyglet_import_guard()
        from psychopy import logging, visual
        from psychopy.hardware import keyboard

        logging.console.setLevel(logging.ERROR)  # dropped frames are counted per trial instead
        self.win = visual.Window(size=size, fullscr=fullscr, screen=screen, color=background,
                                 colorSpace="rgb255", units="pix", allowGUI=False, winType="pyglet",
                                 title="decision-curves lab", checkTiming=False)
        self.win.mouseVisible = False
        self.kb = keyboard.Keyboard()
        self.keyboard_backend = self.kb.getBackend()
        if self.keyboard_backend != "ptb" and not allow_keyboard_fallback:
            self.win.close()
            raise InputError(f"PsychoPy keyboard backend is {self.keyboard_backend!r}, not the "
                             "psychtoolbox one (RTs would be frame-locked); install "
                             "libjack-jackd2-0 or pass --allow-keyboard-fallback to accept it")
        self.pace_period = 1.0 / pace_hz if pace_hz else None
        from pyglet.gl import glFinish

        self._gl_finish = glFinish
        self._deadline = None
        ink = {"color": text_rgb, "colorSpace": "rgb255"}
        self.fixation = visual.TextStim(self.win, text="+", height=40, **ink)
        self.text = visual.TextStim(self.win, text="", height=26, wrapWidth=900, **ink)
        # Feedback texts are laid out once here, so showing them never costs a frame.
        self.feedback = {t: visual.TextStim(self.win, text=t, height=32, **ink)
                         for t in ("too slow", "correct", "wrong")}
        # No interpolation: the texture is drawn at its own pixel size on whole pixels, so the
        # GPU copies pixels; any resizing was done once, on the CPU, by ``preload``.
        self.image = visual.ImageStim(self.win, units="pix", interpolate=False)
        #: Width in px images are drawn at (set from --stimulus-deg); None: their own size.
        self.stimulus_px: int | None = None

    def preload(self, image_path: str) -> tuple[int, int]:
        """Read, resize (once, Lanczos) and upload the next trial's image before its fixation,
        so no frame of the trial pays for it; returns the size it will be drawn at (px)."""
        im = scaled_image(image_path, self.stimulus_px)
        self.image.image = im
        self.image.size = im.size
        self.image.pos = aligned_centre(tuple(int(v) for v in self.win.size), im.size)
        # Draw once into the back buffer and clear it, so the texture upload is not paid at onset.
        self.image.draw()
        self.win.clearBuffer()
        return im.size

    def flip(self) -> float:
        """Flip; with pacing, first wait for the next emulated vertical blank (virtual displays)."""
        if self.pace_period:
            # Render now, so the swap at the emulated blank costs little and jitters less.
            self._gl_finish()
            now = time.perf_counter()
            if self._deadline is None:
                self._deadline = now
            elif now > self._deadline:
                # Missed a blank: wait for the next one on the grid, as a synced display does.
                self._deadline += (np.ceil((now - self._deadline) / self.pace_period)
                                   * self.pace_period)
            remaining = self._deadline - time.perf_counter()
            if remaining > 0.002:
                time.sleep(remaining - 0.002)
            while time.perf_counter() < self._deadline:
                pass
            self._deadline += self.pace_period
        return self.win.flip()

    def measure_refresh(self, n_frames: int = 120, warmup: int = 20) -> dict:
        """Median rate (Hz) and interval SD (ms) over ``n_frames`` blank flips."""
        for _ in range(warmup):
            self.flip()
        stamps = np.array([self.flip() for _ in range(n_frames + 1)])
        intervals = np.diff(stamps)
        return {"hz": float(1.0 / np.median(intervals)),
                "interval_sd_ms": float(intervals.std() * 1e3),
                "interval_min_ms": float(intervals.min() * 1e3),
                "interval_max_ms": float(intervals.max() * 1e3), "n_frames": n_frames}

    def check_keys(self, keys: list[str]) -> list:
        """Keys pressed since the last call; Escape raises QuitRequested."""
        pressed = self.kb.getKeys(keyList=[*keys, "escape"], waitRelease=False)
        if any(k.name == "escape" for k in pressed):
            raise QuitRequested
        return pressed

    def message(self, text: str, advance_keys: list[str], auto_s: float | None) -> None:
        """Show ``text`` until a key in ``advance_keys`` (or ``auto_s`` seconds when set)."""
        self.text.text = text
        self.kb.clearEvents()
        t0 = time.perf_counter()
        while True:
            self.text.draw()
            self.flip()
            if self.check_keys(advance_keys):
                return
            if auto_s is not None and time.perf_counter() - t0 >= auto_s:
                return

    def close(self) -> None:
        self.win.close()


def shown_frames(intervals: list[float], hz: float) -> tuple[int, int]:
    """(frames shown, frames dropped) from the stimulus's flip intervals (s), onset to offset.

    Shown is the whole onset-to-offset time in frames (robust to one late timestamp);
    dropped is how many more frames than flips that was, i.e. blanks a flip missed.
    """
    shown = int(round(float(np.sum(intervals)) * hz))
    return shown, max(0, shown - len(intervals))


def run_trial(screen: LabScreen, image_path: str, category: str, practice: bool,
              mapping: dict[str, str], timing: TrialTiming, hz: float,
              fixation_ms: float, on_onset=None) -> dict:
    """Present one trial frame by frame; returns the measured trial fields of the trial table.

    ``on_onset(t)`` is called after the onset flip with ``time.perf_counter()`` taken when
    the RT clock was zeroed.
    """
    win, kb = screen.win, screen.kb
    keys = [mapping["animal"], mapping["non-animal"]]
    n_fix = max(1, timing.frames(fixation_ms, hz))
    n_stim = timing.frames(timing.stimulus_ms, hz)
    n_window = timing.frames(timing.window_ms, hz)
    screen.preload(image_path)
    for _ in range(n_fix):
        screen.fixation.draw()
        screen.flip()
        screen.check_keys([])
    n0 = len(win.frameIntervals)
    pressed, onset = [], []
    for i in range(n_stim):
        screen.image.draw()
        if i == 0:
            win.callOnFlip(kb.clock.reset)  # RT zero is the onset flip
            win.callOnFlip(kb.clearEvents)
            win.callOnFlip(lambda: onset.append(time.perf_counter()))
        screen.flip()
        if i == 0 and on_onset:
            on_onset(onset[0])  # RT zero on the system's monotonic clock (for tests, logs)
        pressed += screen.check_keys(keys)
    # Blank frames up to the end of the 550 ms window; the first one is the stimulus offset.
    for j in range(n_window - n_stim):
        screen.flip()
        pressed += screen.check_keys(keys)
        if pressed and j > 0:
            break
    # The intervals ending at flips 2..n_stim+1 span onset to offset: what was really shown.
    frames_shown, dropped = shown_frames(win.frameIntervals[n0 + 1:n0 + 1 + n_stim], hz)
    window_s = n_window / hz
    if not pressed:
        # The last blank flip came one frame before the window closes; poll once it has closed.
        while kb.clock.getTime() < window_s:
            time.sleep(0.0005)
        pressed += screen.check_keys(keys)
    in_time = [k for k in pressed if k.rt <= window_s]
    if not in_time:
        # Keep listening through the "too slow" screen so a late answer is still recorded.
        for _ in range(timing.frames(timing.too_slow_ms, hz)):
            screen.feedback["too slow"].draw()
            screen.flip()
            pressed += screen.check_keys(keys)
    first = in_time[0] if in_time else (pressed[0] if pressed else None)
    response = "none" if first is None else \
        ("animal" if first.name == mapping["animal"] else "non-animal")
    timeout = not in_time
    correct = (not timeout) and response == category
    if practice and not timeout:
        for _ in range(timing.frames(timing.practice_feedback_ms, hz)):
            screen.feedback["correct" if correct else "wrong"].draw()
            screen.flip()
            screen.check_keys([])
    return {"response": response, "correct": int(correct), "timeout": int(timeout),
            "rt_ms": None if first is None else round(first.rt * 1000.0, 2),
            "fixation_ms": round(n_fix * 1000.0 / hz, 2), "frames_intended": n_stim,
            "frames_shown": frames_shown, "dropped_frames": dropped}
