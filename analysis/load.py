"""Read trial tables into one DataFrame: the suite's own (SPEC §4) and model-vs-human CSVs.

Every loader returns the SPEC §4 columns, typed, plus added columns the analysis needs
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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from experiment.schema import OBSERVER_TYPES, TRIAL_COLUMNS
from stimuli.errors import InputError

MVH_COLUMNS = ("subj", "Session", "trial", "rt", "object_response", "category",
               "condition", "imagename")
SUITE_DATASET = "animal-vs-non-animal"
_NUMERIC = ("block", "trial", "practice", "level_index", "level_percent",
            "correct", "rt_ms", "timeout", "fixation_ms", "frames_intended", "frames_shown",
            "refresh_hz", "dropped_frames", "p_animal", "top1_class")
_FLAGS = ("practice", "correct", "timeout")


@dataclass(frozen=True)
class Dataset:
    """How a dataset's levels are fit: chance rate, x scale and curve direction."""

    name: str
    guess: float
    fit_scale: str
    increasing: bool
    level_name: str


# Model-vs-human (Geirhos et al.) experiments shipped in ../shared/data, 16 classes each.
DATASETS: dict[str, Dataset] = {
    SUITE_DATASET: Dataset(SUITE_DATASET, 0.5, "log10", True, "% revealed"),
    "contrast": Dataset("contrast", 1 / 16, "log10", True, "contrast (%)"),
    "low-pass": Dataset("low-pass", 1 / 16, "linear", False, "filter SD (px)"),
    "uniform-noise": Dataset("uniform-noise", 1 / 16, "linear", False, "noise width"),
    "phase-scrambling": Dataset("phase-scrambling", 1 / 16, "linear", False,
                                "phase noise (deg)"),
}


def _header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err}); pass a UTF-8 CSV trial table") from None
    return [c.strip() for c in first.rstrip("\r\n").split(",")]


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
    """One suite trial table (SPEC §4 columns) as a typed DataFrame with the added columns."""
    path = Path(path)
    header = _header(path)
    missing = [c for c in TRIAL_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: missing trial-table column(s) {', '.join(missing)}; "
                         "write it with experiment.schema.TrialWriter")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    df = df.replace("", np.nan)
    for col in _NUMERIC:
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


def _mvh_level(condition: pd.Series, dataset: str, path: Path) -> pd.Series:
    text = condition.astype(str).str.strip()
    if dataset == "contrast":
        text = text.str.replace(r"^c", "", regex=True)  # "c05" is 5 % contrast
    level = pd.to_numeric(text, errors="coerce")
    if level.isna().any():
        raise InputError(f"{path}: condition {condition[level.isna()].iloc[0]!r} is not a "
                         "level this importer knows; expected numbers (contrast as c05)")
    return level


def read_model_vs_human(path: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """One model-vs-human CSV (16-class, chance 1/16) mapped onto the trial-table columns."""
    path = Path(path)
    header = _header(path)
    if tuple(header[:len(MVH_COLUMNS)]) != MVH_COLUMNS:
        raise InputError(f"{path}: not a model-vs-human CSV; expected header "
                         f"{','.join(MVH_COLUMNS)}")
    if dataset is None:
        dataset = next((d for d in DATASETS if d != SUITE_DATASET
                        and path.name.startswith(d + "_")), None)
    if dataset not in DATASETS or dataset == SUITE_DATASET:
        raise InputError(f"{path}: cannot tell the experiment from the file name; name it "
                         f"<experiment>_subject-NN_session_N.csv with experiment one of "
                         f"{', '.join(d for d in DATASETS if d != SUITE_DATASET)}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    ds = DATASETS[dataset]
    response = raw["object_response"].str.strip()
    timeout = response.isin(["na", ""])
    level = _mvh_level(raw["condition"], dataset, path)
    ranks = {v: i for i, v in enumerate(np.sort(level.unique()))}
    # The image name embeds subject and condition; its last two fields are the ImageNet id.
    image_id = raw["imagename"].str.replace(r"\.\w+$", "", regex=True).map(
        lambda s: "_".join(s.split("_")[-2:]))
    df = pd.DataFrame({c: np.nan for c in TRIAL_COLUMNS}, index=raw.index)
    df = df.astype(object)
    df["observer_id"] = raw["subj"].str.strip()
    df["observer_type"] = "human"
    df["runner"] = "lab"
    df["session_id"] = dataset + "-" + raw["Session"].astype(str)
    df["trial"] = pd.to_numeric(raw["trial"], errors="coerce")
    df["practice"] = 0
    df["stimulus_id"] = raw["imagename"]
    df["image_id"] = image_id
    df["category"] = raw["category"].str.strip()
    df["level_index"] = level.map(ranks)
    df["level_percent"] = level if dataset == "contrast" else np.nan
    df["response"] = response.where(~timeout, "none")
    df["correct"] = ((response == df["category"]) & ~timeout).astype(int)
    df["rt_ms"] = pd.to_numeric(raw["rt"], errors="coerce") * 1000.0
    df["timeout"] = timeout.astype(int)
    df["condition"] = raw["condition"]
    for col in _NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["dataset"] = dataset
    df["level"] = level.astype(float)
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
        header = _header(path)
        if tuple(header[:len(MVH_COLUMNS)]) == MVH_COLUMNS:
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

