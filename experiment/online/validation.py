"""Checks on everything a participant's page sends; a failure is a 4xx and nothing is stored."""

from __future__ import annotations

import math
import re

from experiment.online.config import CalibrationLimits, Timing
from experiment.visual_angle import CARD_WIDTH_CM, deg_to_px, px_to_deg, whole_px

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TRIAL_FIELDS = {
    "seq", "block", "trial", "practice", "stimulus_id", "response", "rt_ms", "timeout",
    "fixation_ms", "frames_intended", "frames_shown", "refresh_hz", "dropped_frames",
    "timestamp_utc", "key", "timing", "interrupted", "practice_round",
}
OPTIONAL_FIELDS = {"key", "timing", "interrupted", "practice_round"}
# what the page sends with its session start after the virtual chinrest (docs/online.md)
CALIBRATION_FIELDS = {"card_width_px", "px_per_cm", "distance_cm", "dpr", "drawn_px"}
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# an interrupted trial (the page was hidden or frozen) has no bound on its durations
LONG = 10**9
# URL parameters from the recruiting platforms, and what each becomes
PLATFORM_PARAMS = {
    "prolific": ("PROLIFIC_PID", "SESSION_ID", "STUDY_ID"),
    "mturk": ("workerId", "assignmentId", "hitId"),
}


class Invalid(ValueError):
    """A request that breaks a rule; its message is returned to the client."""


def _int(body: dict, name: str, lo: int, hi: int) -> int:
    v = body.get(name)
    if type(v) is not int or not lo <= v <= hi:
        raise Invalid(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _num(body: dict, name: str, lo: float, hi: float, allow_none: bool = False) -> float | None:
    v = body.get(name)
    if v is None and allow_none:
        return None
    if type(v) not in (int, float) or not math.isfinite(v) or not lo <= v <= hi:
        raise Invalid(f"{name} must be a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def platform_identity(params: object) -> tuple[str, str, str, str] | None:
    """(source, observer_id, session_label, study_label) from Prolific/MTurk URL params, or None."""
    if params is None:
        params = {}
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise Invalid("params must be an object of strings")
    for source, (who, session, study) in PLATFORM_PARAMS.items():
        if who not in params:
            continue
        if source == "mturk" and params.get(session) == "ASSIGNMENT_ID_NOT_AVAILABLE":
            raise Invalid("this is an MTurk preview; accept the HIT to take part")
        values = [params.get(k, "") for k in (who, session, study)]
        if not EXTERNAL_ID.match(values[0]) or not all(
                v == "" or EXTERNAL_ID.match(v) for v in values[1:]):
            raise Invalid(f"{source} parameters must be 1-64 letters, digits, '_' or '-'")
        return source, values[0], values[1], values[2]
    return None


def calibration(body: object, stimulus_deg: float, limits: CalibrationLimits) -> dict:
    """Check the page's virtual-chinrest result against its own numbers and the study's
    bounds, and compute the angle its drawn pixels subtend -> what the session stores.

    px/cm is CSS pixels per cm (the card's width / 8.56 cm); ``drawn_px`` is the image's
    width in device pixels, round(2·D·tan(θ/2) · px/cm · devicePixelRatio), which the page
    computes with the same formulas (visual-angle.js); one pixel of floating-point
    difference is allowed, and the angle stored is that of the pixels the page drew.
    """
    if not isinstance(body, dict):
        raise Invalid("calibration must be an object (the virtual chinrest's result)")
    if set(body) != CALIBRATION_FIELDS:
        raise Invalid(f"calibration must have exactly the fields {sorted(CALIBRATION_FIELDS)}")
    card = _num(body, "card_width_px", 1.0, 100_000.0)
    ppcm = _num(body, "px_per_cm", limits.px_per_cm_min, limits.px_per_cm_max)
    distance = _num(body, "distance_cm", limits.distance_cm_min, limits.distance_cm_max)
    dpr = _num(body, "dpr", 0.25, 8.0)
    drawn = _int(body, "drawn_px", 1, 100_000)
    if not math.isclose(ppcm, card / CARD_WIDTH_CM, rel_tol=1e-6):
        raise Invalid(f"px_per_cm {ppcm} is not card_width_px / {CARD_WIDTH_CM}")
    expected = whole_px(deg_to_px(stimulus_deg, distance, ppcm * dpr))
    if abs(drawn - expected) > 1:
        raise Invalid(f"drawn_px {drawn}: {stimulus_deg:g} degrees at this calibration is "
                      f"{expected} device pixels")
    return {"card_width_px": card, "px_per_cm": ppcm, "distance_cm": distance, "dpr": dpr,
            "drawn_px": drawn, "requested_deg": stimulus_deg,
            "stimulus_deg": px_to_deg(drawn, distance, ppcm * dpr)}


def trial_row(body: object, trials: list[dict], timing: Timing, keys: dict,
              max_practice_rounds: int = 1) -> tuple[int, dict, dict]:
    """Validate a posted trial against the session's list.

    Returns (seq, trial-table fields, timing log).
    """
    if not isinstance(body, dict):
        raise Invalid("a trial must be a JSON object")
    unknown = set(body) - TRIAL_FIELDS
    missing = TRIAL_FIELDS - OPTIONAL_FIELDS - set(body)
    if unknown or missing:
        raise Invalid(f"unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
    seq = _int(body, "seq", 0, len(trials) - 1)
    expected = trials[seq]
    for name in ("block", "trial", "practice"):
        _int(body, name, -10**6, 10**6)
        if body[name] != expected[name]:
            raise Invalid(f"{name} {body[name]} is not trial {seq} of your list")
    if not isinstance(body["stimulus_id"], str) or body["stimulus_id"] != expected["stimulus_id"]:
        raise Invalid(f"stimulus_id {body['stimulus_id']!r} is not trial {seq} of your list")
    response = body["response"]
    if response not in ("animal", "non-animal", "none"):
        raise Invalid(f"response must be animal, non-animal or none, got {response!r}")
    timeout = _int(body, "timeout", 0, 1)
    rt = _num(body, "rt_ms", 0.0, timing.window_ms, allow_none=True)
    if (response == "none") != bool(timeout) or (rt is None) != bool(timeout):
        raise Invalid("a timeout has response none and no rt_ms; a response has an rt_ms")
    key = body.get("key")
    if response != "none" and key != keys[response]:
        raise Invalid(f"key {key!r} does not map to response {response!r}")
    interrupted = _int(body, "interrupted", 0, 1) if "interrupted" in body else 0
    practice_round = None
    if expected["practice"]:
        # practice repeated until an accuracy criterion: round 1, 2, ... of the same rows
        practice_round = (_int(body, "practice_round", 1, max_practice_rounds)
                          if body.get("practice_round") is not None else 1)
    elif body.get("practice_round") is not None:
        raise Invalid(f"practice_round on trial {seq}, which is not a practice trial")
    refresh = _num(body, "refresh_hz", timing.refresh_min_hz, timing.refresh_max_hz)
    intended = _int(body, "frames_intended", 1, 10**4)
    if intended != round(timing.stimulus_s * refresh):
        raise Invalid(f"frames_intended {intended} != round({timing.stimulus_s} × {refresh})")
    if interrupted:
        # hidden mid-trial: what was measured is kept (the analysis drops the trial), but
        # durations are unbounded and phases never reached are null
        shown = None if body["frames_shown"] is None else _int(body, "frames_shown", 0, LONG)
        dropped = _int(body, "dropped_frames", 0, LONG)
        fixation = _num(body, "fixation_ms", 0.0, LONG, allow_none=True)
    else:
        shown = _int(body, "frames_shown", 0, 10 * intended)
        dropped = _int(body, "dropped_frames", 0, 10**6)
        # a stalled tab can stretch fixation; shorter than the minimum less a frame is wrong
        fixation = _num(body, "fixation_ms", timing.fixation_min_ms - 1000.0 / refresh,
                        60_000.0)
    stamp = body["timestamp_utc"]
    if not isinstance(stamp, str) or not ISO_UTC.match(stamp):
        raise Invalid("timestamp_utc must be ISO-8601 UTC like 2024-01-02T03:04:05.678Z, "
                      f"got {stamp!r}")
    log = body.get("timing", {})
    if not isinstance(log, dict) or len(log) > 32 or not all(
            isinstance(k, str) and len(k) <= 40 and (v is None or type(v) in (int, float))
            for k, v in log.items()):
        raise Invalid("timing must be an object of at most 32 numbers")
    row = {
        "block": expected["block"], "trial": expected["trial"], "practice": expected["practice"],
        "stimulus_id": expected["stimulus_id"], "image_id": expected["image_id"],
        "category": expected["category"], "level_index": expected["level_index"],
        "level_percent": expected["level_percent"], "response": response,
        "correct": int(response == expected["category"]), "rt_ms": rt, "timeout": timeout,
        "fixation_ms": fixation, "frames_intended": intended, "frames_shown": shown,
        "refresh_hz": refresh, "dropped_frames": dropped, "timestamp_utc": stamp,
        "interrupted": interrupted, "practice_round": practice_round,
    }
    return seq, row, log
