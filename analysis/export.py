"""``python -m analysis export``: trial tables as a shareable data set, BIDS or Psych-DS.

- **BIDS** (``--format bids``, behavioural data, BIDS 1.10): ``dataset_description.json``,
  ``participants.tsv`` (+ ``participants.json``), ``task-rapidcat_beh.json`` at the root
  describing every column of the trial files (BIDS inheritance: it applies to every
  ``…_task-rapidcat_beh.tsv``), and ``sub-<label>/beh/sub-<label>_task-rapidcat_beh.tsv``
  per observer, ``n/a`` where a value does not apply.
- **Psych-DS** (``--format psychds``): ``dataset_description.json`` as JSON-LD
  (``@context`` https://schema.org, ``@type`` Dataset, ``name``, ``description``, and
  ``variableMeasured`` with one ``PropertyValue`` per column of the data files) and
  ``data/study-rapidcat_subject-<label>_data.csv`` per observer (Psych-DS keyword file
  names), an empty cell where a value does not apply.

Labels: BIDS and Psych-DS labels are letters and digits only, so an observer id is
sanitized (``subject-01`` → ``subject01``; a clash gets ``x2``, ``x3`` …); the mapping is
kept in ``participants.tsv`` (BIDS) or the ``source_id`` column of every data file
(Psych-DS). People (human and
simulated observers, ``observer_type`` says which) are exported; models only with
``--include-models``, each as its own subject labelled by its model name. Every trial row
is exported as recorded (practice, timeouts and excluded participants too: the exclusions
are the analysis's, and they are documented with it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import load_trials
from analysis.trial_checks import check_input_files, check_unique_trials
from experiment.schema import OPTIONAL_TRIAL_COLUMNS, TRIAL_COLUMNS
from suite.atomic import atomic_write_text
from suite.cli_types import list_item
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import SUITE_VERSION

FORMATS = ("bids", "psychds")
TASK = "rapidcat"
BIDS_VERSION = "1.10.0"
DEFAULT_NAME = "Rapid animal/non-animal categorization (decision-curves)"

#: Every column a trial file may hold: its description, and units or levels where it has them.
COLUMNS: dict[str, dict] = {
    "observer_type": {"Description": "Kind of observer: a person, a simulated person (not a "
                      "human: drawn from a psychometric model), or a deep network",
                      "Levels": {"human": "a person", "simulated": "a SIMULATED human",
                                 "model": "a deep network"}},
    "runner": {"Description": "What ran the trial",
               "Levels": {"lab": "the lab runner (PsychoPy)", "web": "the browser runner",
                          "simulation": "experiment simulate", "model": "models observe"}},
    "session_id": {"Description": "Identifier of the session the trial belongs to"},
    "list_id": {"Description": "Identifier of the trial list the session followed"},
    "block": {"Description": "Block number within the session (1 = first)"},
    "trial": {"Description": "Trial number within the session (1 = first)"},
    "practice": {"Description": "Whether the trial was a practice trial",
                 "Levels": {"1": "practice", "0": "main trial"}},
    "stimulus_id": {"Description": "Identifier of the stimulus shown (image at a level)"},
    "image_id": {"Description": "Identifier of the source image"},
    "category": {"Description": "True category of the image"},
    "level_index": {"Description": "Index of the stimulus level (0 = the first level; the "
                    "full image after the masked levels)"},
    "level_percent": {"Description": "Percentage of the image revealed (the degradation "
                      "level); n/a for the full image", "Units": "%"},
    "response": {"Description": "The observer's answer ('none' when no answer was given)"},
    "correct": {"Description": "Whether the response was correct",
                "Levels": {"1": "correct", "0": "incorrect or no answer"}},
    "rt_ms": {"Description": "Reaction time from stimulus onset", "Units": "ms"},
    "timeout": {"Description": "Whether the response window ran out without an answer",
                "Levels": {"1": "timed out", "0": "answered"}},
    "fixation_ms": {"Description": "Duration of the fixation cross before the stimulus",
                    "Units": "ms"},
    "frames_intended": {"Description": "Display frames the stimulus was meant to last"},
    "frames_shown": {"Description": "Display frames the stimulus actually lasted (measured)"},
    "refresh_hz": {"Description": "Measured display refresh rate", "Units": "Hz"},
    "dropped_frames": {"Description": "Frames dropped while the stimulus was shown"},
    "model_name": {"Description": "Name of the model (model observers only)"},
    "p_animal": {"Description": "The model's probability that the image shows an animal"},
    "top1_class": {"Description": "The model's top-1 ImageNet class index (0-999)"},
    "timestamp_utc": {"Description": "When the trial ended, ISO 8601, UTC"},
    "interrupted": {"Description": "Whether the web page was hidden during the trial (its "
                    "timing is void)", "Levels": {"1": "interrupted", "0": "not interrupted"}},
    "stimulus_deg": {"Description": "Width of the image as shown", "Units": "degrees of "
                     "visual angle"},
    "practice_round": {"Description": "Round of practice (1, 2, ...; practice repeats until "
                       "an accuracy criterion is met); n/a for test trials"},
    "dataset": {"Description": "Experiment the trial belongs to ('animal-vs-non-animal' for "
                "the suite's own; model-vs-human experiment names otherwise)"},
    "condition": {"Description": "The experiment's own condition label (model-vs-human)"},
    "level": {"Description": "Stimulus level on the experiment's own scale (% revealed for "
              "the suite's own experiment); n/a for the unmodified image"},
}

#: Columns the loader adds for the analysis only (not data); never exported.
_ANALYSIS_ONLY = ("guess", "fit_scale", "increasing", "source_file", "observer_id_given")


def _columns(df: pd.DataFrame) -> list[str]:
    """The data columns to export, in the trial table's order, observer_id excluded (it is the
    subject), then any other recorded column the table has."""
    base = [c for c in dict.fromkeys((*TRIAL_COLUMNS, *OPTIONAL_TRIAL_COLUMNS)) if c in df]
    extra = [c for c in ("dataset", "condition", "level") if c in df]
    cols = [c for c in base if c != "observer_id"] + extra
    unknown = [c for c in df.columns if c not in cols and c != "observer_id"
               and c not in _ANALYSIS_ONLY]
    return cols + unknown


def _describe(column: str) -> dict:
    return COLUMNS.get(column, {"Description": f"Column '{column}' as recorded in the trial "
                                               "table (not described by the suite)"})


def labels(ids) -> dict[str, str]:
    """Observer id → a unique BIDS / Psych-DS label (letters and digits only)."""
    out, used = {}, set()
    for source in ids:
        base = re.sub(r"[^A-Za-z0-9]", "", str(source)) or "observer"
        label, n = base, 1
        while label.lower() in used:
            n += 1
            label = f"{base}x{n}"
        used.add(label.lower())
        out[source] = label
    return out


def _cells(df: pd.DataFrame, na: str) -> pd.DataFrame:
    """Values as text: whole numbers without '.0', missing as ``na``."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        values = df[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            num = values.astype(float)
            finite = num[np.isfinite(num)]
            if (len(finite) and np.all(finite == np.round(finite))
                    and np.all(np.abs(finite) < 2**53)):
                text = num.map(lambda v: na if not np.isfinite(v) else str(int(v)))
            else:
                text = num.map(lambda v: na if not np.isfinite(v) else f"{v:.10g}")
        else:
            text = values.map(lambda v: na if v is None or (isinstance(v, float) and np.isnan(v))
                              or v is pd.NA or str(v) == "" else str(v))
        out[col] = text
    return out


def _observers(df: pd.DataFrame, include_models: bool) -> pd.DataFrame:
    keep = df if include_models else df[df["observer_type"] != "model"]
    if keep.empty:
        raise InputError("no human or simulated observers in the trials to export; pass "
                         "--include-models to export the models' trials")
    return keep


def _participants(df: pd.DataFrame, mapping: dict) -> pd.DataFrame:
    first = df.groupby("observer_id", sort=False).agg(
        observer_type=("observer_type", "first"), n_trials=("observer_id", "size")).reset_index()
    return pd.DataFrame({"label": [mapping[o] for o in first["observer_id"]],
                         "source_id": first["observer_id"].astype(str),
                         "observer_type": first["observer_type"],
                         "n_trials": first["n_trials"]})


def _json(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_bids(df: pd.DataFrame, out: Path, *, name: str = DEFAULT_NAME,
               authors: list[str] | None = None) -> None:
    """Write a BIDS behavioural data set of the trials into ``out`` (an empty folder)."""
    mapping = labels(pd.unique(df["observer_id"]))
    cols = _columns(df)
    atomic_write_text(out / "dataset_description.json", _json({
        "Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
        **({"Authors": list(authors)} if authors else {}),
        "GeneratedBy": [{"Name": "decision-curves", "Version": SUITE_VERSION,
                         "Description": "python -m analysis export --format bids"}]}))
    people = _participants(df, mapping)
    table = pd.DataFrame({"participant_id": "sub-" + people["label"],
                          "source_id": people["source_id"],
                          "observer_type": people["observer_type"],
                          "n_trials": people["n_trials"]})
    atomic_write_text(out / "participants.tsv", _cells(table, "n/a").to_csv(
        sep="\t", index=False, lineterminator="\n"))
    atomic_write_text(out / "participants.json", _json({
        "participant_id": {"Description": "BIDS label of the observer (its source_id with "
                           "every character but letters and digits removed)"},
        "source_id": {"Description": "The observer_id in the suite's trial tables"},
        "observer_type": COLUMNS["observer_type"],
        "n_trials": {"Description": "Trial rows exported for the observer"}}))
    atomic_write_text(out / f"task-{TASK}_beh.json", _json({
        "TaskName": TASK,
        "TaskDescription": "Rapid animal/non-animal categorization of images with part of "
                           "the image revealed (docs/paradigm.md of decision-curves)",
        **{c: _describe(c) for c in cols}}))
    atomic_write_text(out / "README", f"{name}\n\nTrial tables of decision-curves exported "
                      "to BIDS (python -m analysis export). One row per trial; the columns "
                      f"are described in task-{TASK}_beh.json; participants.tsv maps each "
                      "BIDS label to the observer id of the trial tables.\n")
    for source, rows in df.groupby("observer_id", sort=False):
        label = mapping[source]
        folder = out / f"sub-{label}" / "beh"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / f"sub-{label}_task-{TASK}_beh.tsv",
                          _cells(rows[cols], "n/a").to_csv(sep="\t", index=False,
                                                           lineterminator="\n"))


def write_psychds(df: pd.DataFrame, out: Path, *, name: str = DEFAULT_NAME,
                  authors: list[str] | None = None) -> None:
    """Write a Psych-DS data set of the trials into ``out`` (an empty folder)."""
    mapping = labels(pd.unique(df["observer_id"]))
    cols = ["subject", "source_id", *_columns(df)]
    variables = [{"@type": "PropertyValue", "name": "subject",
                  "description": "Label of the observer in the file names (its source_id "
                                 "with every character but letters and digits removed)"},
                 {"@type": "PropertyValue", "name": "source_id",
                  "description": "The observer_id in the suite's trial tables"}]
    for c in cols[2:]:
        d = _describe(c)
        v = {"@type": "PropertyValue", "name": c, "description": d["Description"]}
        if "Units" in d:
            v["unitText"] = d["Units"]
        if "Levels" in d:
            v["valueReference"] = [{"@type": "PropertyValue", "value": k, "name": t}
                                   for k, t in d["Levels"].items()]
        variables.append(v)
    atomic_write_text(out / "dataset_description.json", _json({
        "@context": "https://schema.org", "@type": "Dataset", "name": name,
        "description": "Trial tables of decision-curves (rapid animal/non-animal "
                       "categorization with part of the image revealed), one row per trial, "
                       "one file per observer; an empty cell means the value does not apply.",
        **({"creator": [{"@type": "Person", "name": a} for a in authors]} if authors else {}),
        "variableMeasured": variables}))
    data = out / "data"
    data.mkdir()
    for source, rows in df.groupby("observer_id", sort=False):
        label = mapping[source]
        table = _cells(rows[cols[2:]], "")
        table.insert(0, "subject", label)
        table.insert(1, "source_id", str(source))
        atomic_write_text(data / f"study-{TASK}_subject-{label}_data.csv",
                          table.to_csv(index=False, lineterminator="\n"))


def export_trials(trials, out_dir, *, fmt: str, include_models: bool = False,
                  name: str = DEFAULT_NAME, authors: list[str] | None = None,
                  overwrite: bool = False) -> Path:
    """Export trial tables (paths/folders, or a loaded DataFrame) to ``out_dir`` as ``fmt``
    (``bids`` or ``psychds``); built aside and swapped in only when complete."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} unknown; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    paths = None
    if not isinstance(trials, pd.DataFrame):
        paths = [trials] if isinstance(trials, str | os.PathLike) else list(trials)
    check_output_folder(out, inputs=paths or [], option="--out", overwrite=overwrite)
    if paths is not None:
        check_input_files(paths)
        df = load_trials(paths)
    else:
        df = trials
    check_unique_trials(df)
    df = _observers(df, include_models)
    writer = write_bids if fmt == "bids" else write_psychds
    with building_folder(out, f"analysis export --format {fmt}") as tmp:
        writer(df, tmp, name=name, authors=authors)
    return out


def add_arguments(parser) -> None:
    parser.add_argument("--trials", nargs="+", required=True, type=list_item(),
                        help="trial tables (suite CSVs or model-vs-human CSVs, or folders)")
    parser.add_argument("--format", choices=FORMATS, required=True, dest="fmt",
                        help="bids (behavioural BIDS) or psychds (Psych-DS)")
    parser.add_argument("--out", required=True, help="output folder for the data set")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export in --out (only one the suite made)")
    parser.add_argument("--include-models", action="store_true",
                        help="export model observers too, each as its own subject (default: "
                             "human and simulated observers only)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the data set's name")
    parser.add_argument("--authors", nargs="+", default=None, metavar="NAME", type=list_item(),
                        help="the data set's authors, one quoted name each")


def main(args) -> int:
    out = export_trials(args.trials, args.out, fmt=args.fmt, include_models=args.include_models,
                        name=args.name, authors=args.authors, overwrite=args.overwrite)
    print(out)
    return 0
