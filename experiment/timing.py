"""The timing report a lab checks after every session: frames, drops, fixations, timeouts."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from collections import Counter
from pathlib import Path

import numpy as np

from experiment.lab_screen import TrialTiming
from experiment.schema import TRIAL_COLUMNS, read_rows
from suite.atomic import atomic_write_text
from suite.errors import InputError
from suite.outputs import check_output_file

DEFAULT_TIMING = TrialTiming()


def _numbers(rows: list[dict], column: str, path: Path) -> np.ndarray:
    try:
        return np.array([float(r[column]) for r in rows])
    except ValueError:
        raise InputError(f"{path}: column {column} has empty or non-numeric cells; "
                         "this report reads lab sessions written by "
                         "`python -m experiment run-lab`") from None


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
    out_of_range = ((fixation < timing.fixation_min_ms - 1e-6)
                    | (fixation > timing.fixation_max_ms + 1e-6))
    mismatch = intended != shown
    report = {
        "file": str(path), "trials": len(rows),
        "practice_trials": sum(r["practice"] == "1" for r in rows),
        "refresh_hz": sorted({r["refresh_hz"] for r in rows}),
        "frames": {"intended_vs_shown": {f"{i}->{s}": n for (i, s), n in
                                         sorted(Counter(zip(intended.tolist(), shown.tolist(),
                                                            strict=True)).items())},
                   "trials_mismatched": int(mismatch.sum()),
                   "mismatched_trials": [f"{r['practice']}/{r['trial']}" for r, m in
                                         zip(rows, mismatch, strict=True) if m],
                   "dropped_total": int(dropped.sum()),
                   "trials_with_drops": int((dropped > 0).sum())},
        "fixation_ms": {"min": float(fixation.min()), "max": float(fixation.max()),
                        "mean": float(fixation.mean()), "sd": float(fixation.std()),
                        "outside_range": int(out_of_range.sum()),
                        "range": [timing.fixation_min_ms, timing.fixation_max_ms]},
        "timeouts": {"n": int(timeout.sum()), "rate": float(timeout.mean()),
                     "no_response": sum(r["response"] == "none" for r in rows)},
        "rt_ms": {"n": int(rts.size), **({"median": float(np.median(rts)),
                                          "q25": float(np.percentile(rts, 25)),
                                          "q75": float(np.percentile(rts, 75))}
                                         if rts.size else {})},
    }
    problems = []
    if mismatch.any():
        problems.append(f"{int(mismatch.sum())} trial(s) showed a different number of frames "
                        "than intended")
    if out_of_range.any():
        problems.append(f"{int(out_of_range.sum())} fixation(s) outside {timing.fixation_min_ms:g}-"
                        f"{timing.fixation_max_ms:g} ms")
    if len(report["refresh_hz"]) > 1:
        problems.append("refresh rate changed within the session")
    report["problems"] = problems
    return report


def partial_rows(path: Path) -> int:
    """Rows of a session CSV that are not whole: cut short by a crash, or with too few cells."""
    data = path.read_bytes()
    torn = 1 if data and not data.endswith(b"\n") else 0
    text = data[:data.rfind(b"\n") + 1].decode("utf-8", errors="replace")
    lines = list(csv.reader(io.StringIO(text, newline="")))
    return torn + sum(len(cells) != len(lines[0]) for cells in lines[1:]) if lines else torn


def _process_alive(pid: int) -> bool:
    """True if process ``pid`` runs here and (where /proc says) is a run-lab."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: the process exists, take it as the run
    return not cmdline or b"run-lab" in cmdline  # empty while it starts up


def run_state(run: dict, last: bool) -> str:
    """What became of one start of the runner: its recorded status, or what a stale one means.

    A run that never recorded its end was killed (SIGKILL, power, a crash) unless it is the
    last run and its process is still alive on this computer.
    """
    status = run.get("status") or "unknown"
    if status != "running":
        return status
    host = (run.get("provenance") or {}).get("host")
    if last and run.get("pid") and host == platform.node() and _process_alive(int(run["pid"])):
        return "running"
    return "killed (no end recorded)"


def session_checks(n_rows: int, n_partial: int, session_json: dict | None,
                   side: Path) -> tuple[list, list]:
    """(runs, problems): each run's state and settings, and what the session record contradicts."""
    problems = []
    if n_partial:
        problems.append(f"{n_partial} partial row(s) in the CSV (cut short by a crash, or edited); "
                        "rerun the participant to resume, which sets a torn row aside")
    if session_json is None:
        problems.append(f"no session record {side.name} beside the CSV: runs, refresh checks and "
                        "trials written cannot be checked")
        return [], problems
    runs = []
    raw = session_json.get("runs") or []
    for i, run in enumerate(raw, start=1):
        state = run_state(run, last=i == len(raw))
        rf = run.get("refresh") or {}
        runs.append({"run": i, "started_utc": run.get("started_utc"), "state": state,
                     "trials_written": run.get("trials_written"),
                     "emulated_vsync": bool(run.get("emulated_vsync")),
                     "refresh_override": bool(rf.get("override"))})
        if state == "running":
            problems.append(f"run {i} is still running")
        elif state not in ("complete", "quit (escape)"):
            problems.append(f"run {i} {state if state.startswith('killed') else 'ended: ' + state}")
        if run.get("emulated_vsync"):
            problems.append(f"run {i} used emulated vsync (flips paced in software: a test or "
                            "demo, not a lab display)")
        if rf.get("override"):
            problems.append(f"run {i} ran despite a failed refresh check (--allow-refresh: "
                            + "; ".join(rf.get("problems") or ["no details"]) + ")")
    if not raw:
        problems.append(f"{side.name} records no runs")
    elif runs[-1]["state"] == "quit (escape)":
        problems.append("session not finished (last run quit by Escape); rerun to resume")
    recorded = [r.get("trials_written") for r in raw]
    total = sum(n or 0 for n in recorded)
    unrecorded = any(n is None for n in recorded)
    if n_rows < total:
        problems.append(f"the CSV has {n_rows} whole trial row(s) but {side.name} records {total} "
                        "written: rows are missing (file cut short, replaced or edited?)")
    elif n_rows > total and not unrecorded:
        problems.append(f"the CSV has {n_rows} trial rows but {side.name} records only {total} "
                        "written (rows added from elsewhere?)")
    return runs, problems


def format_report(report: dict, session_json: dict | None) -> str:
    """The report as text for the terminal."""
    f, fx, to, rt = report["frames"], report["fixation_ms"], report["timeouts"], report["rt_ms"]
    lines = [f"session {report['file']}: {report['trials']} trials "
             f"({report['practice_trials']} practice), "
             f"refresh {', '.join(report['refresh_hz'])} Hz",
             "frames intended->shown: "
             + ", ".join(f"{k} x{n}" for k, n in f["intended_vs_shown"].items()),
             (f"trials with a frame mismatch: {f['trials_mismatched']} "
              f"{f['mismatched_trials'] or ''}").rstrip(),
             f"dropped frames: {f['dropped_total']} in {f['trials_with_drops']} trial(s)",
             f"fixation ms: min {fx['min']:.1f}  max {fx['max']:.1f}  mean {fx['mean']:.1f}  "
             f"sd {fx['sd']:.1f}  outside range {fx['outside_range']}",
             f"timeouts: {to['n']} ({100 * to['rate']:.1f} %), no response {to['no_response']}"]
    if rt["n"]:
        lines.append(f"RT ms (in time): median {rt['median']:.0f}  "
                     f"IQR {rt['q25']:.0f}-{rt['q75']:.0f}")
    raw = (session_json or {}).get("runs", [])
    for run, summary in zip(raw, report.get("runs", []), strict=False):
        fi, rf = run.get("frame_intervals", {}), run.get("refresh", {})
        lines.append(f"run {summary['run']} {run.get('started_utc')}: {summary['state']}, measured "
                     f"{rf.get('hz', float('nan')):.2f} Hz "
                     f"(sd {rf.get('interval_sd_ms', float('nan')):.2f} ms)"
                     f"{', OVERRIDDEN' if rf.get('override') else ''}"
                     f"{', EMULATED VSYNC' if run.get('emulated_vsync') else ''}, "
                     f"{fi.get('n', 0)} flips, {fi.get('n_long', 0)} long")
    lines.append("verdict: " + ("OK" if not report["problems"]
                                else "CHECK - " + "; ".join(report["problems"])))
    return "\n".join(lines)


def experimenter_summary(csv_path: Path, session_json: dict) -> dict:
    """What the experimenter reads at the end of a session: test trials, accuracy (timeouts
    count as errors), timeouts, the practice rounds, the stimulus angle, and this report's
    verdict (OK or CHECK with the problems) for the whole session so far."""
    path = Path(csv_path)
    rows = read_rows(path, required=TRIAL_COLUMNS, drop_unterminated=True)
    if not rows:
        return {"trials": 0, "practice_trials": 0, "verdict": "CHECK",
                "problems": ["no trials written yet"]}
    report = timing_report(rows, path)
    _, problems = session_checks(len(rows), partial_rows(path), session_json,
                                 path.with_suffix(".json"))
    test = [r for r in rows if r["practice"] != "1"]
    angles = sorted({r["stimulus_deg"] for r in rows if r.get("stimulus_deg")})
    practice = session_json.get("practice") or {}
    problems = [*report["problems"], *problems]
    return {"trials": len(test), "practice_trials": len(rows) - len(test),
            "accuracy": sum(int(r["correct"]) for r in test) / len(test) if test else None,
            "timeouts": sum(r["timeout"] == "1" for r in test),
            "practice_rounds": practice.get("rounds"),
            "practice_criterion_met": practice.get("met"),
            "stimulus_deg": [float(a) for a in angles],
            "verdict": "OK" if not problems else "CHECK", "problems": problems}


def format_summary(summary: dict) -> str:
    """The experimenter's summary as a few lines for the terminal."""
    acc = summary.get("accuracy")
    lines = [f"summary: {summary['trials']} test trial(s), accuracy "
             f"{'-' if acc is None else f'{100 * acc:.1f} %'} (timeouts as errors), "
             f"timeouts {summary.get('timeouts', 0)}; {summary['practice_trials']} practice "
             "trial(s)"]
    rounds = summary.get("practice_rounds")
    if rounds:
        met = summary.get("practice_criterion_met")
        lines.append("summary: practice " + ", ".join(
            f"round {r['round']} {100 * r['accuracy']:.0f} %" for r in rounds)
            + ("" if met is None else f"; criterion {'met' if met else 'NOT met'}"))
    angles = summary.get("stimulus_deg")
    lines.append("summary: stimulus " + (", ".join(f"{a:.2f}°" for a in angles) if angles
                                         else "angle unknown (no calibration)"))
    lines.append("summary: timing " + summary["verdict"]
                 + (" - " + "; ".join(summary["problems"]) if summary["problems"] else ""))
    return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("session", metavar="SESSION.csv", help="a lab session file (sub-ID.csv)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the report to this JSON file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the verdict is CHECK")


def main(args) -> int:
    path = Path(args.session)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; pass one session file, e.g. {path / 'sub-ID.csv'}")
    side = path.with_suffix(".json")
    if args.json:
        check_output_file(args.json, inputs=[path, side], option="--json")
    rows = read_rows(path, required=TRIAL_COLUMNS)
    if rows and any(r["runner"] != "lab" for r in rows):
        raise InputError(f"{path}: not a lab session (runner is not 'lab'); "
                         "pass a sub-ID.csv from run-lab")
    report = timing_report(rows, path)
    session_json = None
    if side.is_file():
        try:
            session_json = json.loads(side.read_text(encoding="utf-8"))
            if not isinstance(session_json, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            raise InputError(f"{side}: unreadable session record ({err})") from None
    report["partial_rows"] = partial_rows(path)
    report["runs"], problems = session_checks(len(rows), report["partial_rows"], session_json, side)
    report["problems"] = [*report["problems"], *problems]
    print(format_report(report, session_json))
    if args.json:
        atomic_write_text(args.json,
                          json.dumps({**report, "session": session_json}, indent=2) + "\n")
    return 1 if args.strict and report["problems"] else 0
