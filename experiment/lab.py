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
    screen_pixels,
)
from experiment.lab_setup import (
    Calibration,
    calibration_from_args,
    colour,
    instructions_screen,
    practice_accuracy,
    practice_plan,
    read_instructions,
    stimulus_sizes,
    text_colour,
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
    session_columns,
    trial_key,
    verify_stimuli,
)
from experiment.timing import experimenter_summary, format_summary
from suite.cli_types import exactly, float_in, int_at_least, int_in, list_item
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
    """Uniform fixation duration (ms) for one trial.

    Seeded by participant, list and trial so a resume repeats it.
    """
    seed = int.from_bytes(hashlib.sha256(f"{participant}|{list_id}".encode()).digest()[:8],
                          "little")
    return float(np.random.default_rng([seed, *key]).uniform(timing.fixation_min_ms,
                                                             timing.fixation_max_ms))


def choose_refresh(measured: dict, declared: float | None, allow: bool) -> tuple[float, list[str]]:
    """The rate every frame count uses, and the problems found; refuses unless ``allow``.

    Even with ``allow`` the rate used must be one a lab display can have (``PLAUSIBLE_HZ``):
    a measured 1000 Hz (no vsync) would make 400-frame stimuli.
    """
    lo, hi = PLAUSIBLE_HZ
    if declared is not None and not lo <= declared <= hi:
        raise InputError(f"--refresh-hz {declared:g}: must be {lo:g}-{hi:g} Hz "
                         "(a real display's rate)")
    problems = []
    if not lo <= measured["hz"] <= hi:
        problems.append(f"measured {measured['hz']:.1f} Hz is outside {lo:g}-{hi:g} Hz (no vsync?)")
    if measured["interval_sd_ms"] > MAX_JITTER_MS:
        problems.append(f"frame intervals vary by SD {measured['interval_sd_ms']:.2f} ms "
                        f"(> {MAX_JITTER_MS} ms)")
    if declared is not None and abs(measured["hz"] - declared) > 0.02 * declared:
        problems.append(f"measured {measured['hz']:.2f} Hz differs from --refresh-hz "
                        f"{declared:g} by > 2 %")
    if problems and not allow:
        raise InputError("refresh check failed: " + "; ".join(problems) + ". Fix the display "
                         "(vsync on, nothing else running) or pass --allow-refresh with "
                         "--refresh-hz")
    used = declared if declared is not None else measured["hz"]
    if not lo <= used <= hi:
        raise InputError(f"refresh check failed: {problems[0]}; --allow-refresh needs --refresh-hz "
                         f"({lo:g}-{hi:g}) here, as every duration is counted in frames at "
                         "that rate")
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
                        help="run despite a failed refresh check (logged); uses --refresh-hz "
                             "if given")
    parser.add_argument("--emulate-vsync", action="store_true",
                        help="pace flips at --refresh-hz in software: ONLY for displays without "
                             "vsync such as Xvfb (tests, demos); logged")
    parser.add_argument("--auto-advance", type=float_in(0, 3600, low_open=True), default=None,
                        metavar="S", help="text screens advance by themselves after S seconds "
                                          "(unattended runs; 0 < S <= 3600)")
    parser.add_argument("--allow-keyboard-fallback", action="store_true",
                        help="accept PsychoPy's event keyboard if psychtoolbox's is unavailable")
    screen = parser.add_argument_group(
        "stimulus size (docs/experiment.md, Stimulus size): a Monitor Center calibration or the "
        "screen's width and the viewing distance in cm")
    screen.add_argument("--monitor", metavar="NAME", default=None,
                        help="a saved PsychoPy Monitor Center calibration (width cm, distance "
                             "cm, size in px)")
    screen.add_argument("--screen-width-cm", type=float_in(5, 1000), default=None, metavar="CM",
                        help="visible width of the screen in cm (with --distance-cm)")
    screen.add_argument("--distance-cm", type=float_in(10, 1000), default=None, metavar="CM",
                        help="viewing distance, eye to screen, in cm (with --screen-width-cm)")
    screen.add_argument("--stimulus-deg", type=float_in(0.5, 60), default=None, metavar="DEG",
                        help="image width in degrees of visual angle, e.g. 8 (default: the "
                             "images' own pixel size, its angle recorded when calibrated)")
    screen.add_argument("--allow-upscale", action="store_true",
                        help="let --stimulus-deg enlarge images beyond their own pixel size")
    setup = parser.add_argument_group("the lab's setup")
    setup.add_argument("--background", type=colour, default="white", metavar="COLOUR",
                       help="background: a colour name or #rrggbb (default white, as in the "
                            "paper; mid-grey is #808080)")
    setup.add_argument("--instructions", metavar="FILE", default=None,
                       help="the lab's instructions (.md, .html or .txt, shown as plain text; "
                            "{animal_key} and {non_animal_key} are filled in)")
    setup.add_argument("--practice-criterion", type=float_in(0, 1), default=None, metavar="P",
                       help="repeat the practice trials until this accuracy (0-1) is reached")
    setup.add_argument("--practice-max-rounds", type=int_in(1, 20), default=3, metavar="N",
                       help="at most this many practice rounds with --practice-criterion "
                            "(default 3; then the test goes on, recorded)")


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
    calibration = calibration_from_args(args.monitor, args.screen_width_cm, args.distance_cm)
    if args.stimulus_deg is not None and calibration is None:
        raise InputError("--stimulus-deg needs the screen's calibration: --monitor NAME, or "
                         "--screen-width-cm W --distance-cm D")
    own_words = read_instructions(args.instructions) if args.instructions else None
    started = utc_now()
    session = open_session(out, participant, list_path, rows, keys, args.key_order, started)
    mapping = session.mapping
    practice_rows = [r for r in rows if r["practice"] == "1"]
    test_left = [r for r in rows if r["practice"] != "1" and trial_key(r) not in session.done]
    done_practice = [r for r in session.rows if r["practice"] == "1"]
    test_started = any(r["practice"] != "1" for r in session.rows)
    practice_round, practice_left, _ = practice_plan(
        practice_rows, done_practice, test_started, args.practice_criterion,
        args.practice_max_rounds)
    if not practice_left and not test_left:
        print(f"{session.csv_path}: all {len(rows)} trials already done")
        return 0
    verified = verify_stimuli(list_path, rows)
    if verified is None:
        print(f"warning: {list_path} has no sha256 column (written before lists recorded one), "
              "so its stimulus files cannot be verified; rewrite the lists with `python -m "
              "experiment lists` to have them checked", file=sys.stderr)
    native = image_widths(list_path, practice_rows + test_left)
    check_display(args.screen)
    screen_px = screen_pixels(args.screen)
    window_px = screen_px if args.fullscr else tuple(args.window_size)
    sizes = stimulus_sizes(calibration, screen_px, window_px, set(native.values()),
                           args.stimulus_deg, args.allow_upscale)
    if calibration is None:
        print("warning: no --monitor or --screen-width-cm/--distance-cm: the images are drawn at "
              "their own pixel size and their angle is not known (stimulus_deg left empty)",
              file=sys.stderr)
    timing = TrialTiming()
    background = tuple(args.background)
    screen = LabScreen(args.fullscr, args.window_size, args.screen,
                       args.refresh_hz if args.emulate_vsync else None,
                       args.allow_keyboard_fallback,
                       background=background, text_rgb=text_colour(background))
    first = practice_left[0] if practice_left else test_left[0]
    run = {"started_utc": started, "first_trial": list(trial_key(first)), "status": "running",
           "pid": os.getpid(), "keyboard_backend": screen.keyboard_backend,
           "emulated_vsync": args.emulate_vsync, "auto_advance_s": args.auto_advance,
           "stimuli_verified": verified,
           "stimulus_size": size_record(calibration, sizes, screen_px),
           "background_rgb255": list(background),
           "instructions": own_words.record() if own_words else {"file": None, "default": True},
           "provenance": provenance(**vars(args))}
    record = session.record or new_record(session, participant, rows, list_path, keys, timing)
    record["runs"].append(run)
    if practice_rows:
        record["practice"] = practice_record(practice_rows, session.rows, args)
    session.record = record
    written, accepted = 0, False
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        measured = screen.measure_refresh()
        hz, problems = choose_refresh(measured, args.refresh_hz, args.allow_refresh)
        run["refresh"] = {**measured, "declared_hz": args.refresh_hz, "used_hz": hz,
                          "override": bool(problems), "problems": problems}
        run["screen"] = screen_info(screen, args.fullscr)
        if args.fullscr and calibration is not None and run["screen"]["size"][0] != screen_px[0]:
            raise InputError(f"the full-screen window is {run['screen']['size'][0]} px wide, not "
                             f"the screen's {screen_px[0]} px, so the stimulus size would be "
                             "wrong (display scaling?); set the display to 100 % scaling")
        accepted = True  # from here on the session exists on disk, even if no trial completes
        session.save()
        print(f"ready: {hz:.2f} Hz, keys {mapping}", flush=True)
        screen.stimulus_px = None if args.stimulus_deg is None else \
            next(iter(sizes.values())).drawn_px
        screen.win.recordFrameIntervals = True
        start = "continue" if session.done else "start"
        screen.message(instructions_screen(own_words, INSTRUCTIONS, mapping, start), ["space"],
                       args.auto_advance)
        with TrialWriter(session.csv_path, session_columns(session.csv_path)) as writer:
            if writer.set_aside:
                run["torn_row_set_aside"] = str(writer.set_aside)
                print(f"a row cut short by a crash was moved to {writer.set_aside}; "
                      "its trial runs again", flush=True)
            previous = None

            def present(row: dict, practice_round: int | None) -> dict:
                nonlocal previous, written
                if previous is not None and row["block"] != previous["block"]:
                    screen.message(break_text(previous, row), ["space"], args.auto_advance)
                previous = row
                key = trial_key(row)
                file = list_path.parent / row["file"]
                result = run_trial(
                    screen, str(file), row["category"], key[0] == 1,
                    mapping, timing, hz, fixation_ms(participant, row["list_id"], key, timing),
                    on_onset=lambda t, k=key: print(f"onset practice={k[0]} trial={k[1]} t={t:.6f}",
                                                    flush=True))
                size = sizes[native[row["file"]]]
                out_row = trial_row(row, result, participant, session.session_id, hz,
                                    size.stimulus_deg, practice_round)
                writer.write({k: v for k, v in out_row.items() if k in writer.columns})
                written += 1
                print(f"saved practice={key[0]} trial={key[1]} response={result['response']}",
                      flush=True)
                return out_row

            while practice_round:
                session.rows.extend(present(r, practice_round) for r in practice_left)
                accuracy = practice_accuracy([r for r in session.rows if r["practice"] == "1" and
                                              int(r.get("practice_round") or 1) == practice_round])
                record["practice"] = practice_record(practice_rows, session.rows, args)
                session.save()
                criterion = args.practice_criterion
                print(f"practice round {practice_round}: {100 * accuracy:.0f} % correct",
                      flush=True)
                if criterion is None or accuracy >= criterion:
                    break
                if practice_round >= args.practice_max_rounds:
                    print(f"practice criterion {100 * criterion:.0f} % not reached after "
                          f"{practice_round} round(s); the test goes on (recorded)", flush=True)
                    break
                screen.message(f"Practice: {100 * accuracy:.0f} % correct; {100 * criterion:.0f} % "
                               "is needed to go on.\n\nLet's practise once more.\n\n"
                               "Press space to continue.", ["space"], args.auto_advance)
                practice_round, practice_left, previous = practice_round + 1, practice_rows, None
            for row in test_left:
                present(row, None)
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
            run["frame_intervals"] = frame_stats(screen.win.frameIntervals,
                                                 run["refresh"]["used_hz"])
            if run["status"] in ("complete", "quit (escape)"):
                run["summary"] = experimenter_summary(session.csv_path, record)
                print(format_summary(run["summary"]), flush=True)
            session.save()
        screen.close()
    return 0


def image_widths(list_path: Path, rows: list[dict]) -> dict[str, int]:
    """Each stimulus file's width in pixels (read from its header), file as the list names it."""
    from PIL import Image, UnidentifiedImageError

    widths = {}
    for row in rows:
        if row["file"] in widths:
            continue
        path = list_path.parent / row["file"]
        try:
            with Image.open(path) as im:
                widths[row["file"]] = int(im.size[0])
        except (OSError, UnidentifiedImageError) as err:
            raise InputError(f"{path}: not an image PIL can read ({err}); rebuild the stimulus "
                             "set") from None
    return widths


def size_record(calibration: Calibration | None, sizes: dict, screen_px: tuple[int, int]) -> dict:
    """The session JSON's account of the stimulus size: calibration, angle, px/deg, filter."""
    return {"calibration": calibration.to_dict() if calibration else None,
            "screen_px": list(screen_px),
            "sizes": [s.to_dict() for s in sizes.values()],
            "filter": "Pillow LANCZOS (a=3), once per image before its trial; drawn 1:1, "
                      "pixel-aligned, GL_NEAREST" if any(s.scale != 1 for s in sizes.values())
                      else "none (drawn at native size, 1:1, pixel-aligned)"}


def practice_record(practice_rows: list[dict], done: list[dict], args) -> dict:
    """Practice rounds so far: criterion, each round's trials and accuracy, whether it was met."""
    _, _, rounds = practice_plan(practice_rows, [r for r in done if r["practice"] == "1"], True,
                                 None, 1)
    complete = [r for r in rounds if r["trials"] >= len(practice_rows)]
    criterion = args.practice_criterion
    return {"criterion": criterion, "max_rounds": args.practice_max_rounds, "rounds": rounds,
            "met": None if criterion is None or not complete
            else any(r["accuracy"] >= criterion for r in complete)}


def new_record(session: Session, participant: str, rows: list[dict], list_path: Path,
               keys: tuple[str, str], timing: TrialTiming) -> dict:
    """The session JSON of a new session, before its first run is added."""
    info = session.key_order_info
    return {"participant": participant, "session_id": session.session_id,
            "list_id": rows[0]["list_id"], "list_file": str(list_path),
            "list_sha256": list_digest(list_path), "keys": list(keys),
            "key_mapping": session.mapping, "key_order": session.key_order,
            "key_order_rule": info.get("rule"),
            "key_order_sessions_before": info.get("sessions_before"),
            "session_number": info.get("session_number"), "timing_ms": asdict(timing), "runs": []}


def break_text(previous: dict, upcoming: dict) -> str:
    """Text of the screen between blocks (or between practice and the test)."""
    if previous["practice"] == "1" and upcoming["practice"] == "0":
        return ("Practice is over. From now on there is no feedback except 'too slow'.\n\n"
                "Press space to start.")
    return f"Block {previous['block']} done - take a short break.\n\nPress space to continue."


def screen_info(screen: LabScreen, fullscr: bool) -> dict:
    """What the session ran on: window size, full screen, GL renderer."""
    from pyglet.gl import gl_info

    win = screen.win
    return {"size": [int(v) for v in win.size], "fullscr": fullscr,
            "screen": win.screen, "gl_renderer": gl_info.get_renderer(),
            "gl_version": gl_info.get_version()}


def trial_row(row: dict, result: dict, participant: str, session_id: str, hz: float,
              stimulus_deg: float | None = None, practice_round: int | None = None) -> dict:
    """One trial-table row (paradigm §4, with the lab's optional columns) from a list row and
    the measured result."""
    return {"observer_id": participant, "observer_type": "human", "runner": "lab",
            "session_id": session_id, "list_id": row["list_id"], "block": row["block"],
            "trial": row["trial"], "practice": row["practice"], "stimulus_id": row["stimulus_id"],
            "image_id": row["image_id"], "category": row["category"],
            "level_index": row["level_index"], "level_percent": row["level_percent"],
            **result, "refresh_hz": round(hz, 3), "timestamp_utc": utc_now(),
            "stimulus_deg": None if stimulus_deg is None else round(stimulus_deg, 4),
            "practice_round": practice_round}
