"""Run one participant on a trial list in the lab with PsychoPy: a short loop over the list.

Everything a user can get wrong (list, stimulus files, keys, an existing session on another
list) is checked before the window opens. Each trial is appended to ``OUT/sub-ID.csv`` and
fsynced the moment it ends; a rerun resumes at the first trial not on disk.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from experiment.lab_screen import (
    MAX_JITTER_MS,
    PLAUSIBLE_HZ,
    LabScreen,
    QuitRequested,
    TrialTiming,
    check_display,
    run_trial,
)
from experiment.schema import TrialWriter
from experiment.session import (
    KEY_ORDERS,
    Session,
    check_participant,
    list_digest,
    load_trial_list,
    open_session,
    parse_keys,
    trial_key,
    verify_stimuli,
)
from suite.cli_types import exactly, float_in, int_at_least, list_item
from suite.errors import InputError
from suite.outputs import check_output_file
from suite.provenance import provenance, utc_now

MIN_WINDOW, MAX_WINDOW = 200, 16384  # pixels each way for --size
INSTRUCTIONS = (
    "Is there an animal in the picture?\n\nPress {animal} for ANIMAL and {non} for NON-ANIMAL,\n"
    "as fast and as accurately as you can (within about half a second).\n\n"
    "Keep your eyes on the + between pictures.\n\nPress space to {start}."
)


def fixation_ms(participant: str, list_id: str, key: tuple[int, int], timing: TrialTiming) -> float:
    """Uniform fixation duration (ms) for one trial, seeded by participant, list and trial so a resume repeats it."""
    seed = int.from_bytes(hashlib.sha256(f"{participant}|{list_id}".encode()).digest()[:8], "little")
    return float(np.random.default_rng([seed, *key]).uniform(timing.fixation_min_ms, timing.fixation_max_ms))


def choose_refresh(measured: dict, declared: float | None, allow: bool) -> tuple[float, list[str]]:
    """The rate every frame count uses, and the problems found; refuses unless ``allow``.

    Even with ``allow`` the rate used must be one a lab display can have (``PLAUSIBLE_HZ``):
    a measured 1000 Hz (no vsync) would make 400-frame stimuli.
    """
    lo, hi = PLAUSIBLE_HZ
    if declared is not None and not lo <= declared <= hi:
        raise InputError(f"--refresh-hz {declared:g}: must be {lo:g}-{hi:g} Hz (a real display's rate)")
    problems = []
    if not lo <= measured["hz"] <= hi:
        problems.append(f"measured {measured['hz']:.1f} Hz is outside {lo:g}-{hi:g} Hz (no vsync?)")
    if measured["interval_sd_ms"] > MAX_JITTER_MS:
        problems.append(f"frame intervals vary by SD {measured['interval_sd_ms']:.2f} ms "
                        f"(> {MAX_JITTER_MS} ms)")
    if declared is not None and abs(measured["hz"] - declared) > 0.02 * declared:
        problems.append(f"measured {measured['hz']:.2f} Hz differs from --refresh-hz {declared:g} by > 2 %")
    if problems and not allow:
        raise InputError("refresh check failed: " + "; ".join(problems) + ". Fix the display "
                         "(vsync on, nothing else running) or pass --allow-refresh with --refresh-hz")
    used = declared if declared is not None else measured["hz"]
    if not lo <= used <= hi:
        raise InputError(f"refresh check failed: {problems[0]}; --allow-refresh needs --refresh-hz "
                         f"({lo:g}-{hi:g}) here, as every duration is counted in frames at that rate")
    return used, problems


def frame_stats(intervals: list[float], hz: float) -> dict:
    """Summary of every recorded flip interval of a run (ms), with long frames (> 1.5 periods)."""
    iv = np.asarray(intervals) * 1e3
    if iv.size == 0:
        return {"n": 0}
    return {"n": int(iv.size), "mean_ms": float(iv.mean()), "sd_ms": float(iv.std()),
            "min_ms": float(iv.min()), "max_ms": float(iv.max()),
            "n_long": int((iv > 1.5e3 / hz).sum())}


def window_size(text: str) -> tuple[int, int]:
    """``--window-size WxH``: a window of 200-16384 pixels each way."""
    parts = text.lower().split("x")
    try:
        size = tuple(int(v) for v in parts)
    except ValueError:
        size = ()
    if len(size) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT in pixels, e.g. 1024x768")
    if not all(MIN_WINDOW <= v <= MAX_WINDOW for v in size):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must each be "
                                         f"{MIN_WINDOW}-{MAX_WINDOW} pixels")
    return size  # type: ignore[return-value]


def add_arguments(parser) -> None:
    parser.add_argument("--list", required=True, metavar="FILE", help="trial list CSV")
    parser.add_argument("--participant", required=True, metavar="ID",
                        help="1-64 ASCII letters, digits, '-' or '_'")
    parser.add_argument("--out", default="data/lab", metavar="DIR",
                        help="output folder the sessions are added to, one sub-ID.csv and "
                             "sub-ID.json each; never replaced (default data/lab)")
    parser.add_argument("--keys", nargs="+", action=exactly(2), type=list_item(),
                        default=["f", "j"], metavar="KEY",
                        help="the two response keys, separated by a space (default f j; "
                             "escape is reserved)")
    parser.add_argument("--key-order", default="auto", choices=("auto", *KEY_ORDERS),
                        help="auto: a new session takes the order fewer sessions in --out used")
    parser.add_argument("--fullscr", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--window-size", default="1024x768", type=window_size, metavar="WxH",
                        help="window size in px when --no-fullscr (default 1024x768)")
    parser.add_argument("--screen", type=int_at_least(0), default=0,
                        help="screen number, 0 for the first (default 0)")
    parser.add_argument("--refresh-hz", type=float_in(*PLAUSIBLE_HZ), default=None, metavar="HZ",
                        help="expected refresh (50-250); the measured rate must be within 2 %%")
    parser.add_argument("--allow-refresh", action="store_true",
                        help="run despite a failed refresh check (logged); uses --refresh-hz if given")
    parser.add_argument("--emulate-vsync", action="store_true",
                        help="pace flips at --refresh-hz in software: ONLY for displays without "
                             "vsync such as Xvfb (tests, demos); logged")
    parser.add_argument("--auto-advance", type=float_in(0, 3600, low_open=True), default=None,
                        metavar="S", help="text screens advance by themselves after S seconds "
                                          "(unattended runs; 0 < S <= 3600)")
    parser.add_argument("--allow-keyboard-fallback", action="store_true",
                        help="accept PsychoPy's event keyboard if psychtoolbox's is unavailable")


class _Terminated(Exception):
    """SIGTERM arrived during the session."""


def _on_sigterm(signum, frame):
    raise _Terminated


def main(args) -> int:
    list_path = Path(args.list).resolve()
    out = Path(args.out)
    participant = check_participant(args.participant)
    for name in (f"sub-{participant}.csv", f"sub-{participant}.json"):
        check_output_file(out / name, inputs=[list_path], option="--out")
    rows = load_trial_list(list_path)
    keys = parse_keys(args.keys)
    if args.emulate_vsync and args.refresh_hz is None:
        raise InputError("--emulate-vsync needs --refresh-hz (the rate to pace at)")
    started = utc_now()
    session = open_session(out, participant, list_path, rows, keys, args.key_order, started)
    mapping = session.mapping
    remaining = [r for r in rows if trial_key(r) not in session.done]
    if not remaining:
        print(f"{session.csv_path}: all {len(rows)} trials already done")
        return 0
    verified = verify_stimuli(list_path, rows)
    if verified is None:
        print(f"warning: {list_path} has no sha256 column (written before lists recorded one), "
              "so its stimulus files cannot be verified; rewrite the lists with `python -m "
              "experiment lists` to have them checked", file=sys.stderr)
    check_display(args.screen)
    timing = TrialTiming()
    screen = LabScreen(args.fullscr, args.window_size, args.screen,
                       args.refresh_hz if args.emulate_vsync else None, args.allow_keyboard_fallback)
    run = {"started_utc": started, "first_trial": list(trial_key(remaining[0])), "status": "running",
           "pid": os.getpid(), "keyboard_backend": screen.keyboard_backend,
           "emulated_vsync": args.emulate_vsync, "auto_advance_s": args.auto_advance,
           "stimuli_verified": verified, "provenance": provenance(**vars(args))}
    record = session.record or new_record(session, participant, rows, list_path, keys, timing)
    record["runs"].append(run)
    session.record = record
    written, accepted = 0, False
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        measured = screen.measure_refresh()
        hz, problems = choose_refresh(measured, args.refresh_hz, args.allow_refresh)
        run["refresh"] = {**measured, "declared_hz": args.refresh_hz, "used_hz": hz,
                          "override": bool(problems), "problems": problems}
        run["screen"] = screen_info(screen, args.fullscr)
        accepted = True  # from here on the session exists on disk, even if no trial completes
        session.save()
        print(f"ready: {hz:.2f} Hz, keys {mapping}", flush=True)
        screen.win.recordFrameIntervals = True
        start = "continue" if session.done else "start"
        text = INSTRUCTIONS.format(animal=mapping["animal"].upper(), non=mapping["non-animal"].upper(),
                                   start=start)
        screen.message(text, ["space"], args.auto_advance)
        with TrialWriter(session.csv_path) as writer:
            if writer.set_aside:
                run["torn_row_set_aside"] = str(writer.set_aside)
                print(f"a row cut short by a crash was moved to {writer.set_aside}; "
                      "its trial runs again", flush=True)
            for i, row in enumerate(remaining):
                if i and row["block"] != remaining[i - 1]["block"]:
                    screen.message(break_text(remaining[i - 1], row), ["space"], args.auto_advance)
                key = trial_key(row)
                result = run_trial(
                    screen, str(list_path.parent / row["file"]), row["category"], key[0] == 1,
                    mapping, timing, hz, fixation_ms(participant, row["list_id"], key, timing),
                    on_onset=lambda t, k=key: print(f"onset practice={k[0]} trial={k[1]} t={t:.6f}",
                                                    flush=True))
                writer.write(trial_row(row, result, participant, session.session_id, hz))
                written += 1
                print(f"saved practice={key[0]} trial={key[1]} response={result['response']}", flush=True)
        screen.message("Finished - thank you!", ["space"], args.auto_advance or 3.0)
        run["status"] = "complete"
    except QuitRequested:
        run["status"] = "quit (escape)"
        print(f"quit by Escape; {written} trial(s) saved to {session.csv_path}; rerun to resume")
    except KeyboardInterrupt:
        run["status"] = "interrupted (Ctrl-C)"
        print(f"interrupted; {written} trial(s) saved to {session.csv_path}; rerun to resume",
              file=sys.stderr)
        raise
    except _Terminated:
        run["status"] = "terminated (SIGTERM)"
        print(f"terminated; {written} trial(s) saved to {session.csv_path}; rerun to resume",
              file=sys.stderr)
        return 128 + signal.SIGTERM
    except BaseException as err:
        run["status"] = f"aborted by an error ({type(err).__name__}: {err})"
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if accepted:
            run["ended_utc"] = utc_now()
            run["trials_written"] = written
            run["frame_intervals"] = frame_stats(screen.win.frameIntervals, run["refresh"]["used_hz"])
            session.save()
        screen.close()
    return 0


def new_record(session: Session, participant: str, rows: list[dict], list_path: Path,
               keys: tuple[str, str], timing: TrialTiming) -> dict:
    """The session JSON of a new session, before its first run is added."""
    info = session.key_order_info
    return {"participant": participant, "session_id": session.session_id,
            "list_id": rows[0]["list_id"], "list_file": str(list_path),
            "list_sha256": list_digest(list_path), "keys": list(keys),
            "key_mapping": session.mapping, "key_order": session.key_order,
            "key_order_rule": info.get("rule"), "key_order_sessions_before": info.get("sessions_before"),
            "session_number": info.get("session_number"), "timing_ms": asdict(timing), "runs": []}


def break_text(previous: dict, upcoming: dict) -> str:
    """Text of the screen between blocks (or between practice and the test)."""
    if previous["practice"] == "1" and upcoming["practice"] == "0":
        return "Practice is over. From now on there is no feedback except 'too slow'.\n\nPress space to start."
    return f"Block {previous['block']} done - take a short break.\n\nPress space to continue."


def screen_info(screen: LabScreen, fullscr: bool) -> dict:
    """What the session ran on: window size, full screen, GL renderer."""
    from pyglet.gl import gl_info

    win = screen.win
    return {"size": [int(v) for v in win.size], "fullscr": fullscr,
            "screen": win.screen, "gl_renderer": gl_info.get_renderer(),
            "gl_version": gl_info.get_version()}


def trial_row(row: dict, result: dict, participant: str, session_id: str, hz: float) -> dict:
    """One trial-table row (paradigm §4) from a list row and the measured result."""
    return {"observer_id": participant, "observer_type": "human", "runner": "lab",
            "session_id": session_id, "list_id": row["list_id"], "block": row["block"],
            "trial": row["trial"], "practice": row["practice"], "stimulus_id": row["stimulus_id"],
            "image_id": row["image_id"], "category": row["category"],
            "level_index": row["level_index"], "level_percent": row["level_percent"],
            **result, "refresh_hz": round(hz, 3), "timestamp_utc": utc_now()}
