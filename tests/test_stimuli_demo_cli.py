"""The command line (`python -m stimuli build|demo`) and the built-in demo inputs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from stimuli.demo import MAPS_NOTE, write_demo_inputs
from stimuli.io import read_build_manifest
from stimuli.manifest import read_stimulus_manifest
from tests.support.synthetic_maps import make_synthetic_items

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stimuli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_demo_inputs_are_sample_photos_of_both_categories_with_derived_maps(tmp_path):
    manifest = write_demo_inputs(tmp_path / "inputs")
    items = read_build_manifest(manifest)
    cats = [it.category for it in items]
    assert len(items) >= 8 and cats.count("animal") == cats.count("non-animal") == 4
    for it in items:
        m = np.load(it.map)
        assert m.ndim == 2 and m.min() == 0 and m.max() == 1 and 0.3 < (m > 0).mean() < 0.7
    assert "NOT HUMAN MAPS" in (tmp_path / "inputs" / "README.txt").read_text()


def test_demo_command_builds_a_set_labelled_as_not_human_maps(tmp_path):
    out = tmp_path / "demo" / "stimuli"
    proc = _run("demo", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "NOT HUMAN MAPS" in proc.stdout
    info = json.loads((out / "stimulus_set.json").read_text())
    assert info["importance_maps"] == MAPS_NOTE and info["n_stimuli"] == 8 * 12
    assert len(read_stimulus_manifest(out)) == 96 and (out / "contact_sheet.png").is_file()
    again = _run("demo", "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_build_command_takes_every_option(tmp_path):
    items = make_synthetic_items(tmp_path, 1, 1)
    with open(tmp_path / "build.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "map", "image_id", "category", "class_index"])
        for it in items:
            w.writerow([it.image, it.map, it.image_id, it.category, ""])
    out = tmp_path / "set"
    proc = _run("build", "--manifest", str(tmp_path / "build.csv"), "--out", str(out),
                "--seed", "7",
                "--order", "grow", "--budget", "5000", "--levels", "2", "20", "100", "--no-full",
                "--spectrum", "set", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    rows = read_stimulus_manifest(out)
    assert [r["n_revealed"] for r in rows] == [100, 1000, 5000] * 2
    assert {r["budget"] for r in rows} == {5000} and all(r["class_index"] is None for r in rows)
    cfg = json.loads((out / "stimulus_set.json").read_text())["config"]
    assert (cfg["seed"], cfg["order"], cfg["spectrum"], cfg["full"]) == (7, "grow", "set", False)


def test_build_command_reports_bad_input_in_one_line_with_status_2(tmp_path):
    proc = _run("build", "--manifest", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "absent.csv" in proc.stderr
    assert not (tmp_path / "o").exists()
