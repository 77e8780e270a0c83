"""The timing report a lab checks after every session: frames, drops, fixations, timeouts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from experiment.lab_screen import TrialTiming
from experiment.schema import TRIAL_COLUMNS, read_rows
from stimuli.atomic import atomic_write_text
from stimuli.errors import InputError

DEFAULT_TIMING = TrialTiming()


def _numbers(rows: list[dict], column: str, path: Path) -> np.ndarray:
    try:
        return np.array([float(r[column]) for r in rows])
    except ValueError:
        raise InputError(f"{path}: column {column} has empty or non-numeric cells; "
                         "this report reads lab sessions written by `python -m experiment run-lab`") from None


def timing_report(rows: list[dict], path: Path, timing: TrialTiming = DEFAULT_TIMING) -> dict:
    """Frames intended vs shown, dropped frames, fixation distribution (ms), timeouts, RTs (ms)."""
    if not rows:
        raise InputError(f"{path}: no trials in this session file")
    intended = _numbers(rows, "frames_intended", path).astype(int)
    shown = _numbers(rows, "frames_shown", path).astype(int)
    dropped = _numbers(rows, "dropped_frames", path).astype(int)
    fixation = _numbers(rows, "fixation_ms", path)
    timeout = _numbers(rows, "timeout", path).astype(bool)
    rts = np.array([float(r["rt_ms"]) for r, t in zip(rows, timeout, strict=True) if not t])
    out_of_range = (fixation < timing.fixation_min_ms - 1e-6) | (fixation > timing.fixation_max_ms + 1e-6)
    mismatch = intended != shown
    report = {
        "file": str(path), "trials": len(rows),
        "practice_trials": sum(r["practice"] == "1" for r in rows),
        "refresh_hz": sorted({r["refresh_hz"] for r in rows}),
        "frames": {"intended_vs_shown": {f"{i}->{s}": n for (i, s), n in
                                         sorted(Counter(zip(intended.tolist(), shown.tolist(), strict=True)).items())},
                   "trials_mismatched": int(mismatch.sum()),
                   "mismatched_trials": [f"{r['practice']}/{r['trial']}" for r, m in
                                         zip(rows, mismatch, strict=True) if m],
                   "dropped_total": int(dropped.sum()), "trials_with_drops": int((dropped > 0).sum())},
        "fixation_ms": {"min": float(fixation.min()), "max": float(fixation.max()),
                        "mean": float(fixation.mean()), "sd": float(fixation.std()),
                        "outside_range": int(out_of_range.sum()),
                        "range": [timing.fixation_min_ms, timing.fixation_max_ms]},
        "timeouts": {"n": int(timeout.sum()), "rate": float(timeout.mean()),
                     "no_response": sum(r["response"] == "none" for r in rows)},
        "rt_ms": {"n": int(rts.size), **({"median": float(np.median(rts)),
                                          "q25": float(np.percentile(rts, 25)),
                                          "q75": float(np.percentile(rts, 75))} if rts.size else {})},
    }
    problems = []
    if mismatch.any():
        problems.append(f"{int(mismatch.sum())} trial(s) showed a different number of frames than intended")
    if out_of_range.any():
        problems.append(f"{int(out_of_range.sum())} fixation(s) outside {timing.fixation_min_ms:g}-"
                        f"{timing.fixation_max_ms:g} ms")
    if len(report["refresh_hz"]) > 1:
        problems.append("refresh rate changed within the session")
    report["problems"] = problems
    return report


def format_report(report: dict, session_json: dict | None) -> str:
    """The report as text for the terminal."""
    f, fx, to, rt = report["frames"], report["fixation_ms"], report["timeouts"], report["rt_ms"]
    lines = [f"session {report['file']}: {report['trials']} trials "
             f"({report['practice_trials']} practice), refresh {', '.join(report['refresh_hz'])} Hz",
             "frames intended->shown: " + ", ".join(f"{k} x{n}" for k, n in f["intended_vs_shown"].items()),
             f"trials with a frame mismatch: {f['trials_mismatched']} {f['mismatched_trials'] or ''}".rstrip(),
             f"dropped frames: {f['dropped_total']} in {f['trials_with_drops']} trial(s)",
             f"fixation ms: min {fx['min']:.1f}  max {fx['max']:.1f}  mean {fx['mean']:.1f}  "
             f"sd {fx['sd']:.1f}  outside range {fx['outside_range']}",
             f"timeouts: {to['n']} ({100 * to['rate']:.1f} %), no response {to['no_response']}"]
    if rt["n"]:
        lines.append(f"RT ms (in time): median {rt['median']:.0f}  IQR {rt['q25']:.0f}-{rt['q75']:.0f}")
    for run in (session_json or {}).get("runs", []):
        fi, rf = run.get("frame_intervals", {}), run.get("refresh", {})
        lines.append(f"run {run.get('started_utc')}: {run.get('status')}, measured "
                     f"{rf.get('hz', float('nan')):.2f} Hz (sd {rf.get('interval_sd_ms', float('nan')):.2f} ms)"
                     f"{', OVERRIDDEN' if rf.get('override') else ''}"
                     f"{', EMULATED VSYNC' if run.get('emulated_vsync') else ''}, "
                     f"{fi.get('n', 0)} flips, {fi.get('n_long', 0)} long")
    lines.append("verdict: " + ("OK" if not report["problems"] else "CHECK - " + "; ".join(report["problems"])))
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("session", metavar="SESSION.csv", help="a lab session file (sub-ID.csv)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the report as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the verdict is CHECK")


def main(args) -> int:
    path = Path(args.session)
    rows = read_rows(path, required=TRIAL_COLUMNS)
    if rows and any(r["runner"] != "lab" for r in rows):
        raise InputError(f"{path}: not a lab session (runner is not 'lab'); pass a sub-ID.csv from run-lab")
    report = timing_report(rows, path)
    side = path.with_suffix(".json")
    session_json = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else None
    print(format_report(report, session_json))
    if args.json:
        atomic_write_text(args.json, json.dumps({**report, "session": session_json}, indent=2) + "\n")
    return 1 if args.strict and report["problems"] else 0
