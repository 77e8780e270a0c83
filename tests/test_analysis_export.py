"""analysis export: BIDS checked by the full BIDS validator (bids-validator-deno, offline),
Psych-DS checked against the spec's required fields and file-name rule."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.export import COLUMNS, export_trials, labels
from suite.command_line import dispatch
from tests.support.synthetic_trials import write_synthetic

VALIDATOR = Path(sys.executable).parent / "bids-validator-deno"
# Psych-DS data file names (schema: objects/files/DataFile, fileRegex)
PSYCHDS_DATAFILE = re.compile(r"([a-z]+-[a-zA-Z0-9]+)(_[a-z]+-[a-zA-Z0-9]+)*_data\.csv")


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trials")
    return write_synthetic(folder / "trials.csv", n_humans=3, n_images=22,
                           models={"net-a": (10.0, 0.25)}, seed=2)


def validate_bids(folder: Path) -> dict:
    assert VALIDATOR.is_file(), "bids-validator-deno missing: pip install -r requirements.txt"
    run = subprocess.run([str(VALIDATOR), str(folder), "--format", "json", "--max-rows", "-1"],
                         capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    return report


def errors(report: dict) -> list:
    return [(i["code"], i.get("location")) for i in report["issues"]["issues"]
            if i["severity"] == "error"]


def test_bids_export_passes_the_bids_validator(trials, tmp_path):
    out = export_trials([trials], tmp_path / "bids", fmt="bids", authors=["A. Person"])
    report = validate_bids(out)
    assert errors(report) == []
    assert sorted(report["summary"]["subjects"]) == ["synthetic00", "synthetic01", "synthetic02"]
    assert report["summary"]["tasks"] == ["rapidcat"]
    tsv = out / "sub-synthetic01" / "beh" / "sub-synthetic01_task-rapidcat_beh.tsv"
    rows = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    assert len(rows) == 22 and "observer_id" not in rows
    assert (rows["session_id"] == "n/a").all() and "" not in set(rows.to_numpy().ravel())
    sidecar = json.loads((out / "task-rapidcat_beh.json").read_text())
    assert set(rows.columns) <= set(sidecar) and sidecar["TaskName"] == "rapidcat"
    assert sidecar["rt_ms"]["Units"] == "ms"
    people = pd.read_csv(out / "participants.tsv", sep="\t")
    assert list(people["participant_id"]) == ["sub-synthetic00", "sub-synthetic01",
                                              "sub-synthetic02"]
    assert list(people["source_id"]) == ["synthetic-00", "synthetic-01", "synthetic-02"]
    assert not any(p.name.startswith("sub-net") for p in out.iterdir())  # models not by default


def test_bids_with_models_and_model_vs_human_data_validates(mvh_raw, trials, tmp_path):
    out = export_trials([trials], tmp_path / "with_models", fmt="bids", include_models=True)
    assert errors(validate_bids(out)) == []
    people = pd.read_csv(out / "participants.tsv", sep="\t").set_index("participant_id")
    assert people.loc["sub-neta", "observer_type"] == "model"
    assert people.loc["sub-neta", "source_id"] == "net-a"
    mvh = export_trials([mvh_raw / "contrast"], tmp_path / "mvh", fmt="bids")
    report = validate_bids(mvh)
    assert errors(report) == []
    assert len(report["summary"]["subjects"]) == 4
    rows = pd.read_csv(mvh / "sub-subject01" / "beh" / "sub-subject01_task-rapidcat_beh.tsv",
                       sep="\t")
    assert len(rows) == 1280 and {"condition", "dataset"} <= set(rows.columns)


def test_the_validator_catches_a_broken_export(trials, tmp_path):
    # the check can fail: a data file without its subject folder's label breaks BIDS
    out = export_trials([trials], tmp_path / "bids", fmt="bids")
    beh = out / "sub-synthetic00" / "beh"
    shutil.move(beh / "sub-synthetic00_task-rapidcat_beh.tsv", beh / "synthetic00_beh.tsv")
    (out / "dataset_description.json").write_text("{}")
    assert errors(validate_bids(out))


def test_psychds_export_has_the_required_fields(trials, tmp_path):
    out = export_trials([trials], tmp_path / "pds", fmt="psychds", include_models=True)
    meta = json.loads((out / "dataset_description.json").read_text())
    # Psych-DS rules: JSON-LD in the schema.org namespace, @type Dataset, name, description,
    # variableMeasured naming every column of every data file (strings or PropertyValues)
    assert meta["@context"] == "https://schema.org" and meta["@type"] == "Dataset"
    assert meta["name"] and meta["description"]
    measured = {v["name"] for v in meta["variableMeasured"]}
    assert all(v["@type"] == "PropertyValue" and v["description"]
               for v in meta["variableMeasured"])
    files = sorted((out / "data").iterdir())
    assert [f.name for f in files] == [
        "study-rapidcat_subject-neta_data.csv", "study-rapidcat_subject-synthetic00_data.csv",
        "study-rapidcat_subject-synthetic01_data.csv",
        "study-rapidcat_subject-synthetic02_data.csv"]
    seen = set()
    for f in files:
        assert PSYCHDS_DATAFILE.fullmatch(f.name), f.name
        table = pd.read_csv(f, dtype=str, keep_default_na=False)
        seen |= set(table.columns)
        assert table["subject"].nunique() == 1
    assert seen == measured
    net = pd.read_csv(out / "data" / "study-rapidcat_subject-neta_data.csv")
    assert set(net["source_id"]) == {"net-a"} and len(net) == 22 * 11
    units = {v["name"]: v.get("unitText") for v in meta["variableMeasured"]}
    assert units["rt_ms"] == "ms" and units["level_percent"] == "%"


def test_labels_are_letters_and_digits_and_unique():
    got = labels(["subject-01", "subject_01", "sim-001@s2", "ü", "x"])
    assert got == {"subject-01": "subject01", "subject_01": "subject01x2",
                   "sim-001@s2": "sim001s2", "ü": "observer", "x": "x"}
    assert all(re.fullmatch(r"[A-Za-z0-9]+", v) for v in got.values())


def test_every_trial_column_is_described():
    from experiment.schema import OPTIONAL_TRIAL_COLUMNS, TRIAL_COLUMNS
    assert set(TRIAL_COLUMNS) - {"observer_id"} <= set(COLUMNS)
    assert set(OPTIONAL_TRIAL_COLUMNS) <= set(COLUMNS)


def test_command_line_refuses_bad_output_and_keeps_earlier_export(trials, tmp_path, capsys):
    out = tmp_path / "export"
    argv = ["export", "--trials", str(trials), "--format", "bids", "--out", str(out)]
    assert dispatch("python -m analysis", {"export": ("analysis.export", "")}, argv) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert dispatch("python -m analysis", {"export": ("analysis.export", "")}, argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    # an input that is not a trial table: one error line, the earlier export untouched
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    argv_bad = ["export", "--trials", str(bad), "--format", "psychds", "--out", str(out),
                "--overwrite"]
    assert dispatch("python -m analysis", {"export": ("analysis.export", "")}, argv_bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(bad) in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    # the output may not be the input's folder
    argv_in = ["export", "--trials", str(trials), "--format", "bids", "--out",
               str(trials.parent), "--overwrite"]
    assert dispatch("python -m analysis", {"export": ("analysis.export", "")}, argv_in) == 2
    assert "input" in capsys.readouterr().err
