"""Export an online study's stored trials as the suite's trial table (SPEC §4)."""

from __future__ import annotations

from pathlib import Path

from experiment.online.store import StudyStore
from experiment.schema import write_table
from stimuli.errors import InputError


def export_trials(db: str | Path, out: str | Path) -> int:
    """Write every stored trial to ``out`` atomically; returns the number of rows."""
    db = Path(db)
    if not db.is_file():
        raise InputError(f"{db}: no such study database")
    store = StudyStore(db)
    try:
        rows = store.trial_rows()
    finally:
        store.close()
    write_table(out, rows)
    return len(rows)


def add_arguments(parser) -> None:
    parser.add_argument("--db", required=True, help="the study's SQLite file")
    parser.add_argument("--out", required=True, help="trial-table CSV to write")


def main(args) -> int:
    n = export_trials(args.db, args.out)
    print(f"wrote {n} trials to {args.out}")
    return 0
