"""build-online: the site holds only the stimuli the lists use, the lists as JSON, jsPsych from node_modules."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from experiment.__main__ import COMMANDS
from experiment.online.build import build_site, load_lists
from experiment.online.sample_study import make_lists, make_stimulus_set
from experiment.schema import TRIAL_LIST_COLUMNS, read_rows, write_table
from stimuli.command_line import dispatch
from stimuli.errors import InputError


@pytest.fixture
def study(tmp_path) -> tuple[Path, Path]:
    manifest = make_stimulus_set(tmp_path / "set", n_images=4)
    return make_lists(manifest, tmp_path / "lists" / "lists.csv", n_lists=2,
                      stimuli_dir=tmp_path / "set"), tmp_path / "set"


def test_cli_builds_site_with_used_stimuli_only(study, tmp_path):
    lists, stimuli = study
    out = tmp_path / "site"
    rc = dispatch("python -m experiment", COMMANDS, [
        "build-online", "--lists", str(lists.parent), "--stimuli", str(stimuli), "--out", str(out),
        "--keys", "e,i", "--completion-url", "https://app.prolific.com/submissions/complete?cc=X"])
    assert rc == 0
    rows = read_rows(lists, TRIAL_LIST_COLUMNS)
    copied = sorted(p.relative_to(out / "public" / "stimuli").as_posix()
                    for p in (out / "public" / "stimuli").rglob("*.png"))
    # list files are relative to the list's folder; the site keeps their place in the set
    assert copied == sorted({os.path.relpath((lists.parent / r["file"]).resolve(),
                                             stimuli.resolve()) for r in rows})
    assert len(copied) < len(list((stimuli / "images").glob("*.png")))
    study_json = json.loads((out / "study.json").read_text())
    assert study_json["keys"] == {"animal": "e", "non-animal": "i"}
    assert study_json["lists"] == ["L0", "L1"]
    assert study_json["timing"]["stimulus_s"] == 0.4
    l0 = json.loads((out / "lists" / "L0.json").read_text())["trials"]
    assert [t["stimulus_id"] for t in l0] == [r["stimulus_id"] for r in rows if r["list_id"] == "L0"]
    assert [t["seq"] for t in l0] == list(range(len(l0)))
    for name in ("jspsych.js", "jspsych.css", "plugin-fullscreen.js",
                 "plugin-html-keyboard-response.js"):
        assert (out / "public" / "vendor" / name).stat().st_size > 1000
    assert not (out / "public" / "study.json").exists()  # only public/ is served


def test_existing_site_needs_overwrite(study, tmp_path):
    lists, stimuli = study
    build_site([lists], stimuli, tmp_path / "site")
    with pytest.raises(InputError, match="--overwrite"):
        build_site([lists], stimuli, tmp_path / "site")
    build_site([lists], stimuli, tmp_path / "site", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site")) == []


def _rewrite(lists: Path, **change) -> Path:
    rows = read_rows(lists, TRIAL_LIST_COLUMNS)
    rows[1].update(change)
    return write_table(lists.parent / "bad.csv", rows, TRIAL_LIST_COLUMNS)


@pytest.mark.parametrize("change, message", [
    ({"file": "lists.csv"}, "outside the stimulus set"),
    ({"file": "/etc/passwd"}, "relative to the list's folder"),
    ({"file": "../set/images/nothere.png"}, "not found"),
    ({"stimulus_id": "ghost"}, "not in"),
    ({"file": "../set/images/img01_l0.png"}, "in the manifest"),
    ({"category": "cat"}, "category"),
    ({"practice": "yes"}, "practice"),
    ({"list_id": "../evil"}, "list_id"),
    ({"block": "one"}, "block must be an integer"),
    ({"trial": "2"}, "repeats"),
])
def test_bad_list_rows_are_named(study, change, message):
    lists, stimuli = study
    bad = _rewrite(lists, **change)
    with pytest.raises(InputError, match=message) as err:
        load_lists([bad], stimuli)
    assert "bad.csv" in str(err.value)


def test_failed_build_leaves_nothing(study, tmp_path):
    lists, stimuli = study
    bad = _rewrite(lists, stimulus_id="ghost")
    with pytest.raises(InputError):
        build_site([bad], stimuli, tmp_path / "site")
    assert not (tmp_path / "site").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]


def test_missing_node_modules_explains_fix(study, tmp_path):
    lists, stimuli = study
    with pytest.raises(InputError, match="make web-deps"):
        build_site([lists], stimuli, tmp_path / "site", node_modules=tmp_path / "nm")


@pytest.mark.parametrize("keys", ["f", "f,f", "f,jj", "F;J"])
def test_bad_keys_refused(study, tmp_path, keys):
    lists, stimuli = study
    rc = dispatch("python -m experiment", COMMANDS, [
        "build-online", "--lists", str(lists), "--stimuli", str(stimuli),
        "--out", str(tmp_path / "site"), "--keys", keys])
    assert rc == 2 and not (tmp_path / "site").exists()


def test_missing_manifest_is_named(study, tmp_path):
    lists, stimuli = study
    copy = tmp_path / "set2"
    shutil.copytree(stimuli, copy)
    (copy / "manifest.csv").unlink()
    with pytest.raises(InputError, match="manifest.csv"):
        load_lists([lists], copy)


def test_builds_from_lists_written_by_experiment_lists_with_practice(tmp_path):
    # the real list writer names files relative to the list folder, practice from another set
    from experiment.lists import ListConfig, write_lists
    from tests.stimulus_sets import make_stimulus_set as make_set

    make_set(tmp_path / "set", 3, 3, 3)
    make_set(tmp_path / "practice", 2, 2, 3, prefix="prac")
    paths = write_lists(tmp_path / "set", tmp_path / "lists", ListConfig(n_practice=4),
                        tmp_path / "practice")
    out = build_site([tmp_path / "lists"], tmp_path / "set", tmp_path / "site")
    trials = json.loads((out / "lists" / "list-01.json").read_text())["trials"]
    rows = read_rows(paths[0], TRIAL_LIST_COLUMNS)
    assert [t["stimulus_id"] for t in trials] == [r["stimulus_id"] for r in rows]
    practice = [t for t in trials if t["practice"]]
    assert len(practice) == 4 and all(t["file"].startswith("practice/") for t in practice)
    assert all(t["file"].startswith("stimuli/") for t in trials if not t["practice"])
    for t in trials:  # every URL the page loads is in the site, byte-identical to its source
        served = out / "public" / t["file"]
        row = next(r for r in rows if r["stimulus_id"] == t["stimulus_id"])
        assert served.read_bytes() == (paths[0].parent / row["file"]).read_bytes()
        assert "src" not in t
