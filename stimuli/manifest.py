"""The one reader of a stimulus set's manifest.csv (columns: stimuli.schema, paradigm §4)."""

from __future__ import annotations

import os
from pathlib import Path

from stimuli.schema import STIMULUS_MANIFEST_COLUMNS
from suite.errors import InputError
from suite.tables import read_rows

_INT_COLUMNS = ("level_index", "n_revealed", "budget", "seed")
_OPTIONAL_FLOAT = ("level_percent", "centroid_dx", "centroid_dy")


def read_stimulus_rows(set_dir: str | os.PathLike) -> tuple[Path, list[dict]]:
    """(manifest path, rows as strings) of a set's manifest.csv: present, every column,
    not empty."""
    folder = Path(set_dir)
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise InputError(f"{folder}: no manifest.csv here; pass a folder made by "
                         "'python -m stimuli build' (it writes the manifest beside the images)")
    rows = read_rows(manifest, required=STIMULUS_MANIFEST_COLUMNS)
    if not rows:
        raise InputError(f"{manifest}: no stimuli listed; rebuild the set")
    return manifest, rows


def read_stimulus_manifest(set_dir: str | os.PathLike) -> list[dict]:
    """Rows of a set's manifest.csv, typed: ints, floats, None for empty cells; ``file`` stays
    relative."""
    manifest, raw = read_stimulus_rows(set_dir)
    rows = []
    for line, r in enumerate(raw, start=2):
        row = dict(r)
        try:
            for c in _INT_COLUMNS:
                row[c] = int(row[c])
            for c in _OPTIONAL_FLOAT:
                row[c] = float(row[c]) if row[c] else None
            row["class_index"] = int(row["class_index"]) if row["class_index"] else None
        except ValueError as err:
            raise InputError(f"{manifest}, line {line}: {err}; rebuild the set") from None
        rows.append(row)
    return rows
