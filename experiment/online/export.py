"""Export an online study's stored trials as the suite's trial table (paradigm §4)."""

from __future__ import annotations

from pathlib import Path

from experiment.online.store import REJECTED_COLUMNS, WEB_TRIAL_COLUMNS, StudyStore
from experiment.schema import write_table
from suite.errors import InputError
from suite.outputs import check_output_file


def export_trials(db: str | Path, out: str | Path, rejected: bool = False) -> int:
    """Write every stored trial (``rejected``: every trial the server refused) to ``out``
    atomically; returns the number of rows."""
    db = Path(db)
    if not db.is_file():
        raise InputError(f"{db}: no such study database")
    # an output that is the database (or its WAL files) would turn the study into a CSV
    check_output_file(out, inputs=[db, f"{db}-wal", f"{db}-shm"])
    with open(db, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise InputError(f"{db}: not a SQLite database; give the --db file serve wrote")
    store = StudyStore(db)
    try:
        rows = store.rejected_rows() if rejected else store.trial_rows()
    finally:
        store.close()
    write_table(out, rows, REJECTED_COLUMNS if rejected else WEB_TRIAL_COLUMNS)
    return len(rows)


def add_arguments(parser) -> None:
    parser.add_argument("--db", required=True, help="the study's SQLite file")
    parser.add_argument("--out", required=True, help="output file: the trial-table CSV")
    parser.add_argument("--rejected", action="store_true",
                        help="write the trials the server refused instead (one row each, "
                             "with the reason and the body the page sent)")


def main(args) -> int:
    n = export_trials(args.db, args.out, rejected=args.rejected)
    print(f"wrote {n} {'refused ' if args.rejected else ''}trials to {args.out}")
    return 0
