"""The trial list and the one trial table every observer writes (paradigm §4).

Humans in the lab, humans online, simulated observers and models all write rows with
``TRIAL_COLUMNS``; the analysis reads nothing else. Columns may be added, never renamed.
CSV, UTF-8, one header row; an empty cell means "not applicable".
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from suite import tables
from suite.tables import TableError, cell

TRIAL_LIST_COLUMNS = (
    "list_id", "block", "trial", "practice", "stimulus_id", "file", "image_id",
    "category", "level_index", "level_percent",
)

TRIAL_COLUMNS = (
    "observer_id", "observer_type", "runner", "session_id", "list_id", "block", "trial",
    "practice", "stimulus_id", "image_id", "category", "level_index", "level_percent",
    "response", "correct", "rt_ms", "timeout", "fixation_ms", "frames_intended",
    "frames_shown", "refresh_hz", "dropped_frames", "model_name", "p_animal",
    "top1_class", "timestamp_utc",
)

# Optional columns (paradigm §4: added later, empty where not known):
# - interrupted = 1: the web page was hidden (or frozen) during the trial, so its timing is
#   void; the analysis drops it.
# - stimulus_deg: the image's width in degrees of visual angle as shown (its whole pixels at
#   the calibrated px/cm and viewing distance, experiment.visual_angle); empty when unknown.
# - practice_round: 1, 2, ... for practice trials (practice repeated until an accuracy
#   criterion), empty for test trials; a practice trial is identified by it with its trial.
OPTIONAL_TRIAL_COLUMNS = ("interrupted", "stimulus_deg", "practice_round")
# What the lab runner writes: the trial table and the optional columns that apply in the lab.
LAB_TRIAL_COLUMNS = TRIAL_COLUMNS + ("stimulus_deg", "practice_round")

OBSERVER_TYPES = ("human", "simulated", "model")
RUNNERS = ("lab", "web", "simulation", "model")
RESPONSES = ("animal", "non-animal", "none")


class SchemaError(TableError):
    """A row breaks the trial table's vocabulary."""


def validate_trial_row(row: Mapping) -> None:
    """Raise SchemaError if a trial row breaks the paradigm §4 vocabulary."""
    ot = row.get("observer_type")
    if ot not in OBSERVER_TYPES:
        raise SchemaError(f"observer_type must be one of {OBSERVER_TYPES}, got {ot!r}")
    rn = row.get("runner")
    if rn not in RUNNERS:
        raise SchemaError(f"runner must be one of {RUNNERS}, got {rn!r}")
    resp = row.get("response")
    if resp not in RESPONSES:
        raise SchemaError(f"response must be one of {RESPONSES}, got {resp!r}")
    for flag in ("correct", "timeout"):
        if cell(row.get(flag)) not in ("0", "1"):
            raise SchemaError(f"{flag} must be 1 or 0, got {row.get(flag)!r}")


def format_row(row: Mapping, columns: Iterable[str] = TRIAL_COLUMNS) -> str:
    """One CSV line of a trial-table row (``suite.tables.format_row`` with the trial columns)."""
    return tables.format_row(row, columns)


def write_table(path: str | os.PathLike, rows: Iterable[Mapping],
                columns: Iterable[str] = TRIAL_COLUMNS) -> Path:
    """Write a whole table atomically; the trial table's columns unless others are given."""
    return tables.write_table(path, rows, columns)


def read_rows(path: str | os.PathLike, required: Iterable[str] = TRIAL_COLUMNS,
              drop_unterminated: bool = False) -> list[dict]:
    """Rows of a CSV as dicts of strings (``suite.tables.read_rows``); the trial columns required
    unless others are given."""
    return tables.read_rows(path, required, drop_unterminated)


class TrialWriter(tables.AppendTable):
    """Append trial rows, each fsynced as written, checked against the trial vocabulary.

    Rows of the trial table (its columns, then any optional ones) are checked; rows with
    other ``columns`` (a session's extra table) are written unchecked.
    """

    def __init__(self, path: str | os.PathLike, columns: Iterable[str] = TRIAL_COLUMNS,
                 validate: bool = True):
        columns = tuple(columns)
        trial_table = columns[:len(TRIAL_COLUMNS)] == TRIAL_COLUMNS
        check = validate_trial_row if validate and trial_table else None
        super().__init__(path, columns, check)
