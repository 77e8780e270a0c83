"""Read trial tables into one DataFrame: the suite's own (paradigm §4) and model-vs-human CSVs.

Every loader returns the paradigm §4 columns, typed, plus added columns the analysis needs
(columns are only ever added, never renamed):

- ``dataset``  — which experiment the rows belong to (curves never mix datasets);
- ``level``    — the stimulus level in level units (% revealed for the suite; the
  degradation value for model-vs-human); NaN for the unmasked "full" condition;
- ``guess``    — the chance rate of the task (0.5 animal/non-animal, 1/16 model-vs-human);
- ``fit_scale`` / ``increasing`` — how a psychometric fit treats ``level``;
- ``source_file`` — the file each row came from.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import import_mvh
from analysis.import_mvh import MVH_COLUMNS, is_model_vs_human, read_model_vs_human  # noqa: F401
from experiment.schema import OBSERVER_TYPES, TRIAL_COLUMNS
from suite.errors import InputError
from suite.tables import read_header

SUITE_DATASET = "animal-vs-non-animal"
_NUMERIC = ("block", "trial", "practice", "level_index", "level_percent",
            "correct", "rt_ms", "timeout", "fixation_ms", "frames_intended", "frames_shown",
            "refresh_hz", "dropped_frames", "p_animal", "top1_class")
_FLAGS = ("practice", "correct", "timeout")
# optional columns read as numbers when a table has them (stimulus_deg: the image's angle, °)
_OPTIONAL_NUMERIC = ("stimulus_deg",)


@dataclass(frozen=True)
class Dataset:
    """How a dataset's levels are fit: chance rate, x scale and curve direction."""

    name: str
    guess: float
    fit_scale: str
    increasing: bool
    level_name: str


# The suite's own dataset, then model-vs-human's (analysis.import_mvh: its registry and the
# experiments users described), which carry the same fields.
DATASETS: Mapping[str, Dataset] = ChainMap(
    {SUITE_DATASET: Dataset(SUITE_DATASET, 0.5, "log10", True, "% revealed")},
    import_mvh.KNOWN_EXPERIMENTS, import_mvh.DESCRIBED)


def _expand(paths: Iterable[str | os.PathLike]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(p.rglob("*.csv"))
            if not found:
                raise InputError(f"{p}: folder holds no .csv trial tables")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: file not found; pass trial-table CSVs or a folder of them")
    if not out:
        raise InputError("no trial tables given; pass at least one CSV")
    return out


def read_suite_table(path: str | os.PathLike) -> pd.DataFrame:
    """One suite trial table (paradigm §4 columns) as a typed DataFrame with the added columns."""
    path = Path(path)
    header = read_header(path, "pass a UTF-8 CSV trial table")
    missing = [c for c in TRIAL_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: missing trial-table column(s) {', '.join(missing)}; "
                         "write it with experiment.schema.TrialWriter")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    df = df.replace("", np.nan)
    for col in (*_NUMERIC, *(c for c in _OPTIONAL_NUMERIC if c in df)):
        converted = pd.to_numeric(df[col], errors="coerce")
        bad = converted.isna() & df[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise InputError(f"{path}: line {row}, column {col}: {df[col][bad].iloc[0]!r} "
                             "is not a number; fix or blank the cell")
        df[col] = converted
    for col in _FLAGS:
        if not df[col].dropna().isin([0, 1]).all():
            raise InputError(f"{path}: column {col} must hold 1 or 0")
    bad_type = ~df["observer_type"].isin(OBSERVER_TYPES)
    if bad_type.any():
        raise InputError(f"{path}: observer_type {df['observer_type'][bad_type].iloc[0]!r} "
                         f"unknown; use one of {OBSERVER_TYPES}")
    no_name = (df["observer_type"] == "model") & df["model_name"].isna()
    if no_name.any():
        raise InputError(f"{path}: model rows need a model_name")
    if df["correct"].isna().any():
        raise InputError(f"{path}: every trial needs correct = 1 or 0")
    # Models are observers too: one observer per model, named by the model.
    is_model = df["observer_type"] == "model"
    df.loc[is_model & df["observer_id"].isna(), "observer_id"] = df["model_name"]
    ds = DATASETS[SUITE_DATASET]
    df["dataset"] = SUITE_DATASET
    df["level"] = df["level_percent"]
    df["guess"] = ds.guess
    df["fit_scale"] = ds.fit_scale
    df["increasing"] = ds.increasing
    df["source_file"] = str(path)
    return df


def load_trials(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> pd.DataFrame:
    """Read trial tables (files or folders; format detected from the header) into one frame."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = []
    for path in _expand(paths):
        header = read_header(path, "pass a UTF-8 CSV trial table")
        if is_model_vs_human(header):
            frames.append(read_model_vs_human(path))
        else:
            frames.append(read_suite_table(path))
    return pd.concat(frames, ignore_index=True)


def dataset_info(df: pd.DataFrame) -> dict[str, Dataset]:
    """The Dataset entries for the datasets present in ``df``."""
    unknown = sorted(set(df["dataset"]) - set(DATASETS))
    if unknown:
        raise InputError(f"unknown dataset(s) {unknown}; known: {', '.join(DATASETS)}")
    return {d: DATASETS[d] for d in pd.unique(df["dataset"])}

