"""Trial lists: Latin square over levels, category balance, capped runs, blocks, practice,
determinism."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from experiment.__main__ import COMMANDS
from experiment.lists import LIST_COLUMNS, ListConfig, effective_run_cap, write_lists
from experiment.schema import TRIAL_LIST_COLUMNS, read_rows
from suite.command_line import dispatch
from suite.errors import InputError
from tests.support.permissions import unwritable
from tests.support.stimulus_sets import make_stimulus_set

ROOT = Path(__file__).resolve().parents[1]

SETS = [  # (animals, non-animals, masked levels, full condition)
    (6, 6, 3, False),
    (10, 10, 4, True),
    (7, 5, 5, False),
    (100, 100, 11, True),
]


def _longest_run(seq) -> int:
    best = run = 1
    for a, b in zip(seq, seq[1:], strict=False):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best


@pytest.mark.parametrize("n_animal,n_non,n_masked,full", SETS)
def test_latin_square_balance_runs_and_blocks(tmp_path, n_animal, n_non, n_masked, full):
    stim = make_stimulus_set(tmp_path / "set", n_animal, n_non, n_masked, full=full)
    n_levels = n_masked + full
    paths = write_lists(stim, tmp_path / "lists", ListConfig(seed=3, blocks=5))
    assert len(paths) == n_levels
    seen = Counter()
    for path in paths:
        rows = read_rows(path, required=TRIAL_LIST_COLUMNS)
        images = [r["image_id"] for r in rows]
        assert sorted(images) == sorted(set(images)) and len(images) == n_animal + n_non
        seen.update((r["image_id"], r["level_index"]) for r in rows)
        for r in rows:  # file column resolves from the list's folder to the real PNG
            assert (path.parent / r["file"]).is_file()
        per_level = Counter((r["level_index"], r["category"]) for r in rows)
        for cat, n_cat in (("animal", n_animal), ("non-animal", n_non)):
            counts = [per_level[(str(k), cat)] for k in range(n_levels)]
            assert max(counts) - min(counts) <= 1 and sum(counts) == n_cat
        if n_animal == n_non:
            for k in range(n_levels):
                assert abs(per_level[(str(k), "animal")] - per_level[(str(k), "non-animal")]) <= 1
        cats = [r["category"] for r in rows]
        cap = effective_run_cap(cats, 3)
        assert _longest_run(cats) <= cap
        assert [int(r["trial"]) for r in rows] == list(range(1, len(rows) + 1))
        blocks = Counter(int(r["block"]) for r in rows)
        assert sorted(blocks) == [1, 2, 3, 4, 5]
        assert max(blocks.values()) - min(blocks.values()) <= 1
        assert [int(r["block"]) for r in rows] == sorted(int(r["block"]) for r in rows)
    # Across the lists every image is shown at every level exactly once.
    assert len(seen) == (n_animal + n_non) * n_levels and set(seen.values()) == {1}


def test_full_condition_is_the_last_level(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 4, 4, 3, full=True)
    rows = read_rows(write_lists(stim, tmp_path / "lists", ListConfig(blocks=2))[0],
                     required=TRIAL_LIST_COLUMNS)
    full = [r for r in rows if r["level_index"] == "3"]
    assert len(full) == 2 and all(r["level_percent"] == "" for r in full)


def test_run_cap_rises_only_when_counts_force_it():
    assert effective_run_cap(["animal"] * 10 + ["non-animal"] * 10, 3) == 3
    assert effective_run_cap(["animal"] * 12 + ["non-animal"] * 2, 3) == 4


def test_same_seed_same_bytes_other_seed_other_order(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 12, 12, 4)
    a = write_lists(stim, tmp_path / "a", ListConfig(seed=7))
    b = write_lists(stim, tmp_path / "b", ListConfig(seed=7))
    c = write_lists(stim, tmp_path / "c", ListConfig(seed=8))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_practice_from_another_set(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 8, 8, 4)
    prac = make_stimulus_set(tmp_path / "practice", 5, 5, 4, prefix="prac")
    paths = write_lists(stim, tmp_path / "lists", ListConfig(n_practice=6), practice_dir=prac)
    rows = read_rows(paths[0], required=TRIAL_LIST_COLUMNS)
    practice = [r for r in rows if r["practice"] == "1"]
    assert len(practice) == 6 and rows[:6] == practice
    assert {r["block"] for r in practice} == {"0"}
    assert all(r["image_id"].startswith("prac") for r in practice)
    assert Counter(r["category"] for r in practice) == {"animal": 3, "non-animal": 3}
    assert all((paths[0].parent / r["file"]).is_file() for r in practice)
    assert sum(r["practice"] == "0" for r in rows) == 16


def test_practice_overlapping_test_images_is_refused(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 4, 4, 3)
    with pytest.raises(InputError, match="also test images"):
        write_lists(stim, tmp_path / "lists", ListConfig(n_practice=4), practice_dir=stim)
    assert not (tmp_path / "lists").exists()


def test_manifest_with_a_missing_level_is_refused(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 3, 3, 3)
    manifest = stim / "manifest.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError, match=r"manifest\.csv: image .* expected each of"):
        write_lists(stim, tmp_path / "lists")


def test_cli_writes_lists_and_provenance(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 5, 5, 3, full=True)
    out = tmp_path / "lists"
    proc = subprocess.run([sys.executable, "-m", "experiment", "lists", "--stimuli", str(stim),
                           "--out", str(out), "--seed", "4", "--blocks", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "lists.json").read_text())
    assert record["parameters"]["seed"] == 4 and record["parameters"]["blocks"] == 2
    assert (record["n_levels"] == 4
            and sorted(record["lists"]) == [f"list-0{k}" for k in range(1, 5)])
    with open(out / "list-01.csv", encoding="utf-8", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == (*TRIAL_LIST_COLUMNS, "sha256") == LIST_COLUMNS
    bad = subprocess.run([sys.executable, "-m", "experiment", "lists", "--stimuli",
                          str(tmp_path / "nowhere"), "--out", str(tmp_path / "other")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "nowhere" in bad.stderr and bad.stderr.count("\n") == 1


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "experiment", "lists", *map(str, argv)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_row_carries_the_sha256_of_its_stimulus_file(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 4, 4, 3)
    prac = make_stimulus_set(tmp_path / "practice", 2, 2, 3, prefix="prac")
    paths = write_lists(stim, tmp_path / "lists", ListConfig(n_practice=4), practice_dir=prac)
    manifest = {r["stimulus_id"]: r["sha256"] for folder in (stim, prac)
                for r in read_rows(folder / "manifest.csv", required=("stimulus_id", "sha256"))}
    for path in paths:
        rows = read_rows(path, required=LIST_COLUMNS)
        assert sum(r["practice"] == "1" for r in rows) == 4
        for r in rows:
            digest = hashlib.sha256((path.parent / r["file"]).read_bytes()).hexdigest()
            assert r["sha256"] == digest == manifest[r["stimulus_id"]]


def test_rerun_into_an_older_set_of_lists_needs_overwrite_and_replaces_it_whole(tmp_path):
    out = tmp_path / "lists"
    assert _cli("--stimuli", make_stimulus_set(tmp_path / "big", 6, 6, 5),
                "--out", out).returncode == 0
    assert sorted(p.name for p in out.glob("list-*.csv")) == [f"list-0{k}.csv" for k in range(1, 6)]
    small = make_stimulus_set(tmp_path / "small", 6, 6, 3)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = _cli("--stimuli", small, "--out", out)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "not empty" in refused.stderr and "--overwrite" in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    done = _cli("--stimuli", small, "--out", out, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [".decision-curves", "list-01.csv",
                                                     "list-02.csv", "list-03.csv", "lists.json"]
    assert sorted(json.loads((out / "lists.json").read_text())["lists"]) == \
        ["list-01", "list-02", "list-03"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_replaces_only_a_folder_the_suite_made(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 3, 3, 3)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = _cli("--stimuli", stim, "--out", out, "--overwrite")
    assert proc.returncode == 2 and "not made by this suite" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_failed_rerun_leaves_the_earlier_lists_as_they_were(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 4, 4, 3)
    out = tmp_path / "lists"
    write_lists(stim, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError, match="also test images"):
        write_lists(stim, out, ListConfig(n_practice=4), practice_dir=stim, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lists", "set"]


def test_lists_into_the_stimulus_set_itself_is_refused(tmp_path):
    stim = make_stimulus_set(tmp_path / "set", 3, 3, 3)
    proc = _cli("--stimuli", stim, "--out", stim, "--overwrite")
    assert proc.returncode == 2 and "input" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (stim / "list-01.csv").exists()


@pytest.mark.parametrize("case", ["file", "under-file", "unwritable"])
def test_bad_output_paths_are_one_clear_error(tmp_path, case, capsys):
    stim = make_stimulus_set(tmp_path / "set", 3, 3, 3)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    locked = tmp_path / "locked"
    locked.mkdir()
    out = {"file": blocker, "under-file": blocker / "lists", "unwritable": locked / "lists"}[case]
    with unwritable(locked):
        rc = dispatch("python -m experiment", COMMANDS,
                      ["lists", "--stimuli", str(stim), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and err.count("\n") == 1, err
    assert str(out) in err
    assert blocker.read_text() == "a file" and list(locked.iterdir()) == []
