"""Checks on the loaded trials before any analysis: each trial once, each observer one person.

- ``check_input_files`` refuses a trial table given twice (as itself, via another path or
  inside a folder also given).
- ``check_unique_trials`` refuses a trial that appears twice — the same observer, session,
  stimulus and trial number — within one file or across files (a file and its copy), naming
  the file(s): counting a trial twice would narrow every interval.
- ``split_shared_observers`` keys a person by (observer_id, session_id) when one observer id
  was used on several trial lists (``experiment simulate`` repeats its ids across lists):
  each list is one participant's Latin square, so the sessions are different observers. It
  returns one warning line to print and show in the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from suite.errors import InputError

#: What makes a trial row one trial: the same observer, session, stimulus and trial number
#: (and practice round, when practice was repeated until a criterion: optional column).
TRIAL_KEY = ["observer_type", "observer_id", "model_name", "session_id", "stimulus_id", "trial",
             "practice_round"]


def _csvs(path: Path) -> list[Path]:
    return sorted(path.rglob("*.csv")) if path.is_dir() else [path]


def check_input_files(paths: Iterable[str | os.PathLike]) -> None:
    """Refuse a trial table named twice (same file, by any path, or inside a folder given)."""
    seen: dict[Path, Path] = {}
    for given in paths:
        for path in _csvs(Path(given)):
            if not path.exists():
                continue  # the loader names missing files
            real = path.resolve()
            if real in seen:
                first = seen[real]
                how = "twice" if str(first) == str(path) else f"twice (as {first} and {path})"
                raise InputError(f"{path}: trial table given {how}; its trials would be counted "
                                 "twice — pass each trial table once")
            seen[real] = path


def _describe(row) -> str:
    who = row.observer_id if pd.notna(row.observer_id) else "?"
    session = row.session_id if pd.notna(row.session_id) else "(none)"
    trial = int(row.trial) if pd.notna(row.trial) else "?"
    return f"observer {who}, session {session}, stimulus {row.stimulus_id}, trial {trial}"


def check_unique_trials(df: pd.DataFrame) -> None:
    """Refuse trial rows that repeat (observer, session, stimulus, trial), naming the files."""
    cols = [c for c in TRIAL_KEY if c in df]
    if "stimulus_id" not in cols or "trial" not in cols:
        return
    text = df[cols].astype(object).fillna("(none)").astype(str)
    key = text[cols[0]].str.cat([text[c] for c in cols[1:]], sep="\x1f")
    dup = key.duplicated(keep=False)
    if not dup.any():
        return
    source = df["source_file"] if "source_file" in df else pd.Series("(trials)", index=df.index)
    rows = df[dup].assign(_key=key[dup], _src=source[dup])
    groups = rows.groupby("_key", sort=False)["_src"].agg(list)
    n_extra = int(dup.sum() - len(groups))
    example_key = groups.index[0]
    example = _describe(rows[rows["_key"] == example_key].iloc[0])
    files = list(dict.fromkeys(groups.iloc[0]))
    if len(files) == 1:
        raise InputError(f"{files[0]}: {n_extra} trial row(s) appear more than once in this file "
                         f"(e.g. {example}); each trial must be recorded once — remove the "
                         "repeated rows")
    raise InputError(f"{files[0]} and {files[1]} hold the same trials ({n_extra} repeated "
                     f"row(s), e.g. {example}); a file and its copy would count every trial "
                     "twice — pass each trial table once")


def split_shared_observers(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Key people by (observer_id, session_id) where one id spans several trial lists.

    Returns the trials (``observer_id`` of the split people becomes ``ID@SESSION``, the
    given id is kept in the added column ``observer_id_given``) and warning lines, one per
    call at most (empty when no id spans several lists).
    """
    df = df.copy()
    df["observer_id_given"] = df["observer_id"]
    if "list_id" not in df or "session_id" not in df:
        return df, []
    people = df[(df["observer_type"] != "model") & df["list_id"].notna()]
    if people.empty:
        return df, []
    lists = people.groupby(["dataset", "observer_type", "observer_id"], sort=False)["list_id"]
    shared = lists.nunique()
    shared = shared[shared > 1]
    if shared.empty:
        return df, []
    ids = []
    for dataset, kind, oid in shared.index:
        rows = (df["dataset"] == dataset) & (df["observer_type"] == kind) & \
               (df["observer_id"] == oid)
        # a session on one list is one person; without a session id, the list tells them apart
        part = df.loc[rows, ["session_id", "list_id"]]
        per_session = part.dropna().groupby("session_id")["list_id"].nunique()
        by = "session_id" if part["session_id"].notna().all() and (per_session == 1).all() \
            else "list_id"
        df.loc[rows, "observer_id"] = oid + "@" + part[by].fillna("?").astype(str)
        ids.append(str(oid))
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    note = (f"WARNING: {len(ids)} observer id(s) span several trial lists ({shown}); each "
            "session is counted as its own observer (ID@SESSION). Give every participant "
            "their own observer_id if they are different people.")
    return df, [note]
