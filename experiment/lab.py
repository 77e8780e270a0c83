"""Run one participant on a trial list in the lab with PsychoPy: a short loop over the list.

Everything a user can get wrong (list, stimulus files, keys, an existing session on another
list) is checked before the window opens. Each trial is appended to ``OUT/sub-ID.csv`` and
fsynced the moment it ends; a rerun resumes at the first trial not on disk.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from experiment.lab_screen import (
    MAX_JITTER_MS,
    PLAUSIBLE_HZ,
    LabScreen,
    QuitRequested,
    TrialTiming,
    run_trial,
)
from experiment.schema import TrialWriter
from experiment.session import (
    check_participant,
    key_mapping,
    list_digest,
    load_trial_list,
    open_session,
    trial_key,
)
from stimuli.errors import InputError
from stimuli.provenance import provenance, utc_now

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
    """The rate every frame count uses, and the problems found; refuses unless ``allow``."""
    problems = []
    if not PLAUSIBLE_HZ[0] <= measured["hz"] <= PLAUSIBLE_HZ[1]:
        problems.append(f"measured {measured['hz']:.1f} Hz is outside {PLAUSIBLE_HZ} Hz (no vsync?)")
    if measured["interval_sd_ms"] > MAX_JITTER_MS:
        problems.append(f"frame intervals vary by SD {measured['interval_sd_ms']:.2f} ms "
                        f"(> {MAX_JITTER_MS} ms)")
    if declared and abs(measured["hz"] - declared) > 0.02 * declared:
        problems.append(f"measured {measured['hz']:.2f} Hz differs from --refresh-hz {declared} by > 2 %")
    if problems and not allow:
        raise InputError("refresh check failed: " + "; ".join(problems) + ". Fix the display "
                         "(vsync on, nothing else running) or pass --allow-refresh with --refresh-hz")
    return (declared or measured["hz"]), problems


def frame_stats(intervals: list[float], hz: float) -> dict:
    """Summary of every recorded flip interval of a run (ms), with long frames (> 1.5 periods)."""
    iv = np.asarray(intervals) * 1e3
    if iv.size == 0:
        return {"n": 0}
    return {"n": int(iv.size), "mean_ms": float(iv.mean()), "sd_ms": float(iv.std()),
            "min_ms": float(iv.min()), "max_ms": float(iv.max()),
            "n_long": int((iv > 1.5e3 / hz).sum())}


def add_arguments(parser) -> None:
    parser.add_argument("--list", required=True, metavar="FILE", help="trial list CSV")
    parser.add_argument("--participant", required=True, metavar="ID")
    parser.add_argument("--out", default="data/lab", metavar="DIR", help="session folder (default data/lab)")
    parser.add_argument("--keys", default="f,j", help="two response keys (default f,j)")
    parser.add_argument("--key-order", default="auto", choices=("auto", "animal-first", "animal-second"),
                        help="auto: odd participant numbers (or hash) get the first key for animal")
    parser.add_argument("--fullscr", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--size", default="1024x768", help="window size when --no-fullscr")
    parser.add_argument("--screen", type=int, default=0)
    parser.add_argument("--refresh-hz", type=float, default=None,
                        help="expected refresh; the measured rate must be within 2 %%")
    parser.add_argument("--allow-refresh", action="store_true",
                        help="run despite a failed refresh check (logged); uses --refresh-hz if given")
    parser.add_argument("--emulate-vsync", action="store_true",
                        help="pace flips at --refresh-hz in software: ONLY for displays without "
                             "vsync such as Xvfb (tests, demos); logged")
    parser.add_argument("--auto-advance", type=float, default=None, metavar="S",
                        help="text screens advance by themselves after S seconds (unattended runs)")
    parser.add_argument("--allow-keyboard-fallback", action="store_true",
                        help="accept PsychoPy's event keyboard if psychtoolbox's is unavailable")


def main(args) -> int:
    list_path = Path(args.list).resolve()
    rows = load_trial_list(list_path)
    participant = check_participant(args.participant)
    mapping = key_mapping(participant, tuple(k.strip() for k in args.keys.split(",")), args.key_order)
    if args.emulate_vsync and not args.refresh_hz:
        raise InputError("--emulate-vsync needs --refresh-hz (the rate to pace at)")
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {args.size!r}: give WIDTHxHEIGHT, e.g. 1024x768") from None
    started = utc_now()
    session = open_session(Path(args.out), participant, list_path, rows, mapping, started)
    remaining = [r for r in rows if trial_key(r) not in session.done]
    if not remaining:
        print(f"{session.csv_path}: all {len(rows)} trials already done")
        return 0
    timing = TrialTiming()
    screen = LabScreen(args.fullscr, size, args.screen, args.refresh_hz if args.emulate_vsync else None,
                       args.allow_keyboard_fallback)
    run = {"started_utc": started, "first_trial": list(trial_key(remaining[0])), "status": "running",
           "keyboard_backend": screen.keyboard_backend, "emulated_vsync": args.emulate_vsync,
           "auto_advance_s": args.auto_advance, "provenance": provenance(**vars(args))}
    record = session.record or {
        "participant": participant, "session_id": session.session_id, "list_id": rows[0]["list_id"],
        "list_file": str(list_path), "list_sha256": list_digest(list_path), "key_mapping": mapping,
        "key_order_rule": "auto: odd participant number (or odd first SHA-256 byte) -> first key is animal",
        "timing_ms": asdict(timing), "runs": []}
    record["runs"].append(run)
    session.record = record
    written, accepted = 0, False
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
            for i, row in enumerate(remaining):
                if i and row["block"] != remaining[i - 1]["block"]:
                    screen.message(break_text(remaining[i - 1], row), ["space"], args.auto_advance)
                key = trial_key(row)
                result = run_trial(
                    screen, str(list_path.parent / row["file"]), row["category"], key[0] == 1,
                    mapping, timing, hz, fixation_ms(participant, row["list_id"], key, timing),
                    on_onset=lambda k=key: print(f"onset practice={k[0]} trial={k[1]}", flush=True))
                writer.write(trial_row(row, result, participant, session.session_id, hz))
                written += 1
                print(f"saved practice={key[0]} trial={key[1]} response={result['response']}", flush=True)
        screen.message("Finished - thank you!", ["space"], args.auto_advance or 3.0)
        run["status"] = "complete"
    except QuitRequested:
        run["status"] = "quit (escape)"
        print(f"quit by Escape; {written} trial(s) saved to {session.csv_path}; rerun to resume")
    finally:
        if accepted:
            run["ended_utc"] = utc_now()
            run["trials_written"] = written
            if run["status"] == "running":
                run["status"] = "aborted by an error"
            run["frame_intervals"] = frame_stats(screen.win.frameIntervals, run["refresh"]["used_hz"])
            session.save()
        screen.close()
    return 0


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
    """One trial-table row (SPEC §4) from a list row and the measured result."""
    return {"observer_id": participant, "observer_type": "human", "runner": "lab",
            "session_id": session_id, "list_id": row["list_id"], "block": row["block"],
            "trial": row["trial"], "practice": row["practice"], "stimulus_id": row["stimulus_id"],
            "image_id": row["image_id"], "category": row["category"],
            "level_index": row["level_index"], "level_percent": row["level_percent"],
            **result, "refresh_hz": round(hz, 3), "timestamp_utc": utc_now()}
