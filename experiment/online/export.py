"""Export an online study's stored trials as the suite's trial table (paradigm §4)."""

from __future__ import annotations

from pathlib import Path

from experiment.online.store import (
    REJECTED_COLUMNS,
    SCREEN_OUT_COLUMNS,
    SESSION_COLUMNS,
    WEB_TRIAL_COLUMNS,
    StudyStore,
)
from experiment.schema import write_table
from suite.errors import InputError
from suite.outputs import check_output_file

# what export can write: the trial table, or one of the study's other tables
TABLES = {"trials": WEB_TRIAL_COLUMNS, "rejected": REJECTED_COLUMNS,
          "sessions": SESSION_COLUMNS, "screen-outs": SCREEN_OUT_COLUMNS}


def open_for_export(db: str | Path, out: str | Path, what: str) -> StudyStore:
    """The store of an existing ``db`` whose tables will be written to ``out``, both checked.

    An output that is the database (or its WAL files) would turn the data into a CSV; a
    file that is not SQLite is refused before the store would create tables in it.
    """
    db = Path(db)
    if not db.is_file():
        raise InputError(f"{db}: no such {what} database")
    check_output_file(out, inputs=[db, f"{db}-wal", f"{db}-shm"])
    with open(db, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise InputError(f"{db}: not a SQLite database; give the --db file serve wrote")
    return StudyStore(db)


def export_trials(db: str | Path, out: str | Path, rejected: bool = False,
                  table: str = "trials") -> int:
    """Write every stored trial (``rejected``, or ``table`` 'rejected': every trial the server
    refused; 'sessions': one row per session with its calibration; 'screen-outs': the
    participants stopped before a list was assigned) to ``out`` atomically; returns the
    number of rows."""
    table = "rejected" if rejected else table
    store = open_for_export(db, out, "study")
    try:
        rows = {"trials": store.trial_rows, "rejected": store.rejected_rows,
                "sessions": store.session_rows, "screen-outs": store.screen_out_rows}[table]()
    finally:
        store.close()
    write_table(out, rows, TABLES[table])
    return len(rows)


def study_summary(db: str | Path) -> str:
    """The researcher's status line: sessions (complete), screen-outs by reason, test trials,
    accuracy (timeouts as errors), timeouts, interrupted trials, the angle's range."""
    store = StudyStore(db)
    try:
        sessions, trials = store.session_rows(), store.trial_rows()
        outs = store.screen_out_counts()
    finally:
        store.close()
    test = [r for r in trials if str(r["practice"]) != "1"]
    counted = [r for r in test if str(r.get("interrupted")) != "1"]
    correct = sum(str(r["correct"]) == "1" for r in counted)
    angles = sorted(float(s["stimulus_deg"]) for s in sessions if s["stimulus_deg"] != "")
    return (f"study: {len(sessions)} sessions ({sum(bool(s['completed_utc']) for s in sessions)}"
            f" complete); screened out: "
            + (", ".join(f"{k} {v}" for k, v in outs.items()) or "none")
            + f"; {len(test)} test trials, accuracy "
            + (f"{100 * correct / len(counted):.1f} %" if counted else "-")
            + f" (timeouts as errors), timeouts {sum(str(r['timeout']) == '1' for r in test)}, "
            f"interrupted {len(test) - len(counted)}; stimulus "
            + (f"{angles[0]:.2f}-{angles[-1]:.2f} deg" if angles else "angle unknown"))


def add_arguments(parser) -> None:
    parser.add_argument("--db", required=True, help="the study's SQLite file")
    parser.add_argument("--out", required=True, help="output file: the trial-table CSV")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--rejected", action="store_true",
                      help="write the trials the server refused instead (one row each, "
                           "with the reason and the body the page sent)")
    what.add_argument("--sessions", action="store_true",
                      help="write one row per session instead: its virtual-chinrest "
                           "calibration (px/cm, distance, angle) and trials stored")
    what.add_argument("--screen-outs", action="store_true",
                      help="write the participants stopped before a list was assigned "
                           "instead (consent declined, implausible calibration, screen too "
                           "small)")


def main(args) -> int:
    table = ("rejected" if args.rejected else "sessions" if args.sessions
             else "screen-outs" if args.screen_outs else "trials")
    n = export_trials(args.db, args.out, table=table)
    print(f"wrote {n} {'refused trials' if table == 'rejected' else table} rows to {args.out}")
    print(study_summary(args.db))
    return 0
