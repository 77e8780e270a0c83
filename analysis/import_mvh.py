"""Model-vs-human (Geirhos et al.) raw CSVs mapped onto the suite's trial-table columns.

A model-vs-human raw file holds one observer's session of one experiment::

    subj,Session,trial,rt,object_response,category,condition,imagename

(some experiments write ``session`` in lower case) and is named
``<experiment>_<observer>_session_<n>.csv`` (``_session-<n>`` for the project's model
files). The experiment is taken from the file name, else from the folder name (the project
keeps each experiment in a folder named after it), else from the condition values when they
belong to exactly one known experiment.

How an experiment's conditions become data is a registry (``KNOWN_EXPERIMENTS``, written in
the same TOML form a user describes a new experiment with):

- ``graded`` experiments have a level per condition and are fit on ``scale`` (``linear`` or
  ``log10``) in ``direction`` (``increasing``: a higher level is easier). ``levels`` maps a
  condition to its level (default: the condition is the number); conditions listed in
  ``full`` are the unmodified image: no level (like the suite's full-image condition).
- ``categorical`` experiments report accuracy per condition, with no curve fit; their
  ``conditions`` give the order (the first is the reference); none means one condition.

An experiment the registry does not know is read from a description the user writes in
``experiments.toml`` beside the CSVs (or in the folder above): the same tables as
``KNOWN_EXPERIMENTS`` (see docs/analysis.md, "Model-vs-human data").
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.curves import wilson_interval
from experiment.schema import TRIAL_COLUMNS
from suite.errors import InputError
from suite.tables import read_header

MVH_COLUMNS = ("subj", "Session", "trial", "rt", "object_response", "category",
               "condition", "imagename")
DESCRIPTION_FILE = "experiments.toml"
CATEGORICAL = "categorical"
KINDS = ("graded", CATEGORICAL)
FIT_SCALES = ("linear", "log10")
DIRECTIONS = ("increasing", "decreasing")
_SIXTEEN_CLASS = 1 / 16
_NUMERIC = ("block", "trial", "practice", "level_index", "level_percent",
            "correct", "rt_ms", "timeout", "fixation_ms", "frames_intended", "frames_shown",
            "refresh_hz", "dropped_frames", "p_animal", "top1_class")
_FILE_NAME = re.compile(r"^(?P<experiment>.+?)_(?P<observer>[^_]+)_session[-_]\d+\.csv$",
                        re.IGNORECASE)
_KEYS = {"kind", "guess", "scale", "direction", "levels", "full", "conditions", "label",
         "percent"}

# The 17 datasets of model-vs-human's raw data (modelvshuman/datasets/experiments.py), all
# 16-class (chance 1/16). Condition strings as the raw files write them; numbers are
# matched by value, so "3" and "3.0", "0.00" and "0.0" are the same condition. A backslash
# at the end of a line joins it to the next (Python drops both), keeping long lines short.
KNOWN_EXPERIMENTS_TOML = """
[colour]
kind = "categorical"
conditions = ["cr", "bw"]              # colour, greyscale

[contrast]
kind = "graded"
scale = "log10"
direction = "increasing"               # more contrast is easier
label = "contrast (%)"
percent = true
levels = { c100 = 100, c50 = 50, c30 = 30, c15 = 15, c10 = 10, c05 = 5, c03 = 3, c01 = 1 }

[high-pass]
kind = "graded"
scale = "log10"
direction = "increasing"               # a wider filter keeps more of the image
label = "high-pass filter SD"
full = ["inf"]                         # unfiltered

[low-pass]
kind = "graded"
scale = "linear"
direction = "decreasing"               # more blur is harder
label = "filter SD (px)"

[phase-scrambling]
kind = "graded"
scale = "linear"
direction = "decreasing"
label = "phase noise (deg)"

[power-equalisation]
kind = "categorical"
conditions = ["0", "pow"]              # original, equalised power spectrum

[false-colour]
kind = "categorical"
conditions = ["True", "False"]         # true colours, opponent colours

[rotation]
kind = "categorical"
conditions = ["0", "90", "180", "270"]

[eidolonI]
kind = "graded"
scale = "linear"
direction = "decreasing"               # a longer reach is harder
label = "log2 reach"
levels = { "1-10-10" = 0, "2-10-10" = 1, "4-10-10" = 2, "8-10-10" = 3, "16-10-10" = 4, \
"32-10-10" = 5, "64-10-10" = 6, "128-10-10" = 7 }

[eidolonII]
kind = "graded"
scale = "linear"
direction = "decreasing"
label = "log2 reach"
levels = { "1-3-10" = 0, "2-3-10" = 1, "4-3-10" = 2, "8-3-10" = 3, "16-3-10" = 4, \
"32-3-10" = 5, "64-3-10" = 6, "128-3-10" = 7 }

[eidolonIII]
kind = "graded"
scale = "linear"
direction = "decreasing"
label = "log2 reach"
levels = { "1-0-10" = 0, "2-0-10" = 1, "4-0-10" = 2, "8-0-10" = 3, "16-0-10" = 4, \
"32-0-10" = 5, "64-0-10" = 6, "128-0-10" = 7 }

[uniform-noise]
kind = "graded"
scale = "linear"
direction = "decreasing"
label = "noise width"

[sketch]
kind = "categorical"

[stylized]
kind = "categorical"

[edge]
kind = "categorical"

[silhouette]
kind = "categorical"

[cue-conflict]
kind = "categorical"                   # correct = the shape category \
(texture answers count as errors)
"""


@dataclass(frozen=True)
class Experiment:
    """How one experiment's conditions become levels (graded) or categories (categorical).

    ``guess``, ``fit_scale``, ``increasing`` and ``level_name`` are what the rest of the
    analysis reads of a dataset (the same fields as ``analysis.load.Dataset``).
    """

    name: str
    kind: str
    guess: float
    fit_scale: str
    increasing: bool
    level_name: str
    levels: Mapping[str, float] | None = None
    full: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    percent: bool = False
    source: str = "built-in"

    @property
    def categorical(self) -> bool:
        return self.kind == CATEGORICAL


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _same_condition(a: str, b: str) -> bool:
    if a == b or a.lower() == b.lower():
        return True
    x, y = _number(a), _number(b)
    return x is not None and x == y


def _find(condition: str, names) -> str | None:
    return next((n for n in names if _same_condition(condition, n)), None)


def _condition_text(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"{where}: conditions are strings (or numbers), got {value!r}")
    return str(value)


def _experiment(name: str, spec, source: str) -> Experiment:
    """One registry table (built-in or a user's description) checked into an Experiment."""
    where = f"{source}: [{name}]"
    if not isinstance(spec, dict):
        raise InputError(f"{source}: {name!r} must be a table [{name}] describing an experiment")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                         f"use {', '.join(sorted(_KEYS))}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    guess = spec.get("guess", _SIXTEEN_CLASS)
    if isinstance(guess, bool) or not isinstance(guess, int | float) or not 0 <= guess < 1:
        raise InputError(f"{where}: guess is the chance rate, a number in [0, 1) "
                         f"(1/16 = 0.0625 for 16 classes), got {guess!r}")
    label = spec.get("label", "level" if kind == "graded" else "condition")
    if not isinstance(label, str):
        raise InputError(f"{where}: label must be a string, got {label!r}")
    if kind == CATEGORICAL:
        misplaced = sorted({"scale", "direction", "levels", "full", "percent"} & set(spec))
        if misplaced:
            raise InputError(f"{where}: a categorical experiment has no {', '.join(misplaced)}"
                             " (it is reported as accuracy per condition, not fit); "
                             "use kind = \"graded\" for a curve")
        conditions = spec.get("conditions", [])
        if not isinstance(conditions, list):
            raise InputError(f"{where}: conditions must be a list, e.g. [\"0\", \"90\"]")
        names = tuple(_condition_text(c, where) for c in conditions)
        if len({n.lower() for n in names}) != len(names):
            raise InputError(f"{where}: conditions {list(names)} repeat a condition")
        return Experiment(name, kind, float(guess), CATEGORICAL, False, label,
                          conditions=names, source=source)
    scale, direction = spec.get("scale"), spec.get("direction")
    if scale not in FIT_SCALES:
        raise InputError(f"{where}: scale must be one of {', '.join(FIT_SCALES)} (the axis the "
                         f"curve is fit on), got {scale!r}")
    if direction not in DIRECTIONS:
        raise InputError(f"{where}: direction must be \"increasing\" (a higher level is "
                         f"easier) or \"decreasing\" (harder), got {direction!r}")
    levels = spec.get("levels")
    if levels is not None:
        if not isinstance(levels, dict) or not levels:
            raise InputError(f"{where}: levels must be a table condition = level, "
                             "e.g. { c100 = 100, c50 = 50 }")
        for cond, value in levels.items():
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise InputError(f"{where}: level of condition {cond!r} must be a number, "
                                 f"got {value!r}")
            if scale == "log10" and value <= 0:
                raise InputError(f"{where}: level of condition {cond!r} is {value}; levels "
                                 "must be > 0 on the log10 scale")
        levels = {str(k): float(v) for k, v in levels.items()}
    full = spec.get("full", [])
    if not isinstance(full, list):
        raise InputError(f"{where}: full must be a list of conditions, e.g. [\"inf\"]")
    percent = spec.get("percent", False)
    if not isinstance(percent, bool):
        raise InputError(f"{where}: percent must be true or false")
    return Experiment(name, kind, float(guess), scale, direction == "increasing", label,
                      levels=levels, full=tuple(_condition_text(c, where) for c in full),
                      percent=percent, source=source)


def parse_experiments(text: str, source: str) -> dict[str, Experiment]:
    """Experiments from TOML text: one table per experiment, named as in the file names."""
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{source}: not valid TOML ({err})") from None
    if not tables:
        raise InputError(f"{source}: describes no experiment; add a table [<experiment>]")
    return {name: _experiment(name, spec, source) for name, spec in tables.items()}


KNOWN_EXPERIMENTS: dict[str, Experiment] = parse_experiments(KNOWN_EXPERIMENTS_TOML, "built-in")
# Experiments read from users' description files in this process (name -> Experiment), so
# that figures and alignment see them as they see the built-in ones.
DESCRIBED: dict[str, Experiment] = {}


def read_descriptions(path: str | os.PathLike) -> dict[str, Experiment]:
    """A user's description file: experiments the registry does not know."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the experiment description ({err})") from None
    found = parse_experiments(text, str(path))
    clash = sorted(set(found) & set(KNOWN_EXPERIMENTS))
    if clash:
        raise InputError(f"{path}: {', '.join(clash)} is a built-in model-vs-human experiment; "
                         "describe only experiments the suite does not know (another name)")
    return found


def _description_files(csv: Path) -> list[Path]:
    folder = csv.resolve().parent
    return [folder / DESCRIPTION_FILE, folder.parent / DESCRIPTION_FILE]


def _lookup(name: str, table: Mapping[str, Experiment]) -> Experiment | None:
    return table.get(name) or next((e for n, e in table.items() if n.lower() == name.lower()),
                                   None)


def _described(name: str, csv: Path) -> Experiment | None:
    """The experiment as described in the nearest description file that names it."""
    for candidate in _description_files(csv):
        if candidate.is_file():
            exp = _lookup(name, read_descriptions(candidate))
            if exp is not None:
                DESCRIBED[exp.name] = exp  # the last description read is the one shown
                return exp
    return None


def _resolve(name: str, csv: Path) -> Experiment | None:
    """A built-in experiment, else one described beside the file (never a stale one)."""
    return _lookup(name, KNOWN_EXPERIMENTS) or _described(name, csv)


def _how_to_describe(name: str, csv: Path) -> str:
    return (f"describe it in {_description_files(csv)[0]} as a table [{name}] with "
            "kind = \"graded\" (scale = \"linear\" or \"log10\", direction = \"increasing\" or "
            "\"decreasing\", optional levels = {{ condition = level }}) or kind = "
            "\"categorical\" (conditions = [first = reference, ...]), and guess = the chance "
            "rate (default 1/16); see docs/analysis.md, Model-vs-human data")


def _by_conditions(conditions: list[str]) -> list[Experiment]:
    """Known experiments whose closed set of conditions holds every condition given."""
    hits = []
    for exp in KNOWN_EXPERIMENTS.values():
        names = exp.conditions if exp.categorical else tuple(exp.levels or ()) + exp.full
        if (exp.categorical and not exp.conditions) or (not exp.categorical and not exp.levels):
            continue  # open: any condition (or any number) would fit
        if all(_find(c, names) is not None for c in conditions):
            hits.append(exp)
    return hits


def experiment_of(path: str | os.PathLike, conditions: list[str] | None = None) -> Experiment:
    """The experiment a model-vs-human file belongs to: from its name, its folder, or its
    conditions (in that order); a name the suite does not know needs a description."""
    path = Path(path)
    match = _FILE_NAME.match(path.name)
    if match:
        name = match["experiment"]
        exp = _resolve(name, path)
        if exp is None:
            known = ", ".join(KNOWN_EXPERIMENTS)
            raise InputError(f"{path}: experiment {name!r} (from the file name) is not one the "
                             f"suite knows ({known}); {_how_to_describe(name, path)}")
        return exp
    folder = path.resolve().parent.name
    exp = _resolve(folder, path)
    if exp is not None:
        return exp
    hits = _by_conditions(conditions or [])
    if conditions and len(hits) == 1:
        return hits[0]
    why = (f"its conditions fit {', '.join(e.name for e in hits)}" if len(hits) > 1
           else "nor do its conditions")
    raise InputError(f"{path}: cannot tell the experiment: the file name does not follow "
                     f"<experiment>_subject-NN_session_N.csv, the folder {folder!r} is not an "
                     f"experiment, {why}; rename the file after its experiment (known: "
                     f"{', '.join(KNOWN_EXPERIMENTS)}) or, for a new one, "
                     f"{_how_to_describe('<experiment>', path)}")


def is_model_vs_human(header: list[str]) -> bool:
    """True when a CSV header is model-vs-human's (``Session`` in either case)."""
    return [h.strip().lower() for h in header[:len(MVH_COLUMNS)]] == \
        [c.lower() for c in MVH_COLUMNS]


def _graded_levels(exp: Experiment, condition: pd.Series, path: Path) -> pd.Series:
    """Level per row (NaN for ``full`` conditions); refuses a condition with no level."""
    cache: dict[str, float] = {}
    for cond in pd.unique(condition):
        if _find(cond, exp.full) is not None:
            cache[cond] = np.nan
            continue
        if exp.levels is not None:
            key = _find(cond, exp.levels)
            if key is None:
                raise InputError(f"{path}: condition {cond!r} is not one of experiment "
                                 f"{exp.name!r} ({', '.join([*exp.levels, *exp.full])}); "
                                 f"fix the file or the description ({exp.source})")
            value = exp.levels[key]
        else:
            value = _number(cond)
            if value is None:
                full = f" or one of {list(exp.full)}" if exp.full else ""
                raise InputError(f"{path}: condition {cond!r} of experiment {exp.name!r} is "
                                 f"not a number{full}; give its level in the description's "
                                 f"levels table ({exp.source})")
        if exp.fit_scale == "log10" and value <= 0:
            raise InputError(f"{path}: condition {cond!r} has level {value:g}, but experiment "
                             f"{exp.name!r} is fit on log10 (levels > 0); list it under full "
                             f"or use scale = \"linear\" ({exp.source})")
        cache[cond] = value
    return condition.map(cache).astype(float)


def _categories(exp: Experiment, condition: pd.Series, path: Path) -> pd.Series:
    """Position of each row's condition in the experiment's order (0 = reference)."""
    if not exp.conditions:
        return pd.Series(0, index=condition.index)  # one condition
    order = {}
    for cond in pd.unique(condition):
        key = _find(cond, exp.conditions)
        if key is None:
            raise InputError(f"{path}: condition {cond!r} is not one of experiment "
                             f"{exp.name!r} ({', '.join(exp.conditions)}); fix the file or "
                             f"the description ({exp.source})")
        order[cond] = exp.conditions.index(key)
    return condition.map(order)


def read_model_vs_human(path: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """One model-vs-human CSV mapped onto the trial-table columns (plus the added columns)."""
    path = Path(path)
    header = read_header(path, "pass a UTF-8 CSV trial table")
    if not is_model_vs_human(header):
        raise InputError(f"{path}: not a model-vs-human CSV; expected header "
                         f"{','.join(MVH_COLUMNS)}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    raw.columns = [*MVH_COLUMNS, *raw.columns[len(MVH_COLUMNS):]]
    condition = raw["condition"].str.strip()
    if dataset is not None:
        exp = _resolve(dataset, path)
        if exp is None:
            raise InputError(f"{path}: experiment {dataset!r} is not one the suite knows; "
                             f"{_how_to_describe(dataset, path)}")
    else:
        exp = experiment_of(path, list(pd.unique(condition)))
    response = raw["object_response"].str.strip()
    rt = pd.to_numeric(raw["rt"], errors="coerce")
    timeout = response.str.lower().isin(["na", "nan", ""])
    # model-vs-human's model files have no reaction times and never time out.
    is_model = bool(rt.isna().all() and not timeout.any())
    # The image name ends with the ImageNet id (synset_number) where it has one.
    image_id = raw["imagename"].str.replace(r"\.\w+$", "", regex=True).map(
        lambda s: "_".join(s.split("_")[-2:]))
    df = pd.DataFrame({c: np.nan for c in TRIAL_COLUMNS}, index=raw.index).astype(object)
    observer = raw["subj"].str.strip()
    df["observer_id"] = observer
    df["observer_type"] = "model" if is_model else "human"
    df["runner"] = "model" if is_model else "lab"
    if is_model:
        df["model_name"] = observer
    df["session_id"] = exp.name + "-" + raw["Session"].astype(str)
    df["trial"] = pd.to_numeric(raw["trial"], errors="coerce")
    df["practice"] = 0
    df["stimulus_id"] = raw["imagename"]
    df["image_id"] = image_id
    df["category"] = raw["category"].str.strip()
    if exp.categorical:
        level = pd.Series(np.nan, index=raw.index)
        df["level_index"] = _categories(exp, condition, path)
    else:
        level = _graded_levels(exp, condition, path)
        ranks = {v: i for i, v in enumerate(np.sort(level.dropna().unique()))}
        df["level_index"] = level.map(ranks)
        if exp.percent:
            df["level_percent"] = level
    df["response"] = response.where(~timeout, "none")
    df["correct"] = ((response == df["category"]) & ~timeout).astype(int)
    df["rt_ms"] = rt * 1000.0
    df["timeout"] = timeout.astype(int)
    # A categorical experiment without conditions is one condition, whatever the cells say.
    df["condition"] = "all" if exp.categorical and not exp.conditions else condition
    for col in _NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["dataset"] = exp.name
    df["level"] = level.astype(float)
    df["guess"] = exp.guess
    df["fit_scale"] = exp.fit_scale
    df["increasing"] = exp.increasing
    df["source_file"] = str(path)
    return df


def is_categorical(df: pd.DataFrame) -> pd.Series:
    """Rows of categorical experiments (accuracy per condition, no curve)."""
    if "fit_scale" not in df:
        return pd.Series(False, index=df.index)
    return df["fit_scale"] == CATEGORICAL


def categorical_accuracy(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy per condition of categorical experiments: one row per observer and condition,
    then one pooled row per observer type (``observer_id`` = ``all``), Wilson intervals."""
    rows = df[is_categorical(df)].copy()
    columns = ["dataset", "condition_order", "condition", "observer_type", "observer_id",
               "model_name", "n_observers", "n_trials", "n_correct", "accuracy", "ci_low",
               "ci_high", "guess"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows["model_name"] = rows["model_name"].fillna("")
    rows["condition_order"] = rows["level_index"].astype(int)
    key = ["dataset", "condition_order", "condition"]
    per = rows.groupby([*key, "observer_type", "observer_id", "model_name"], sort=True).agg(
        n_trials=("correct", "size"), n_correct=("correct", "sum"),
        guess=("guess", "first")).reset_index()
    per["n_observers"], per["_pooled"] = 1, False
    pooled = rows.groupby([*key, "observer_type"], sort=True).agg(
        n_observers=("observer_id", "nunique"), n_trials=("correct", "size"),
        n_correct=("correct", "sum"), guess=("guess", "first")).reset_index()
    pooled["observer_id"], pooled["model_name"], pooled["_pooled"] = "all", "", True
    out = pd.concat([per, pooled], ignore_index=True)
    out = out.sort_values([*key, "observer_type", "_pooled", "observer_id"], kind="stable")
    out["accuracy"] = out["n_correct"] / out["n_trials"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["n_correct"], out["n_trials"],
                                                    confidence)
    return out[columns].reset_index(drop=True)
