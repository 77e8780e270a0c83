"""The map loop on real photographs with SIMULATED players: clicks → maps → build, labelled NOT
HUMAN."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from stimuli.__main__ import COMMANDS
from stimuli.simulated_players import SIMULATED_PREFIX
from suite.command_line import dispatch


def _stimuli(*argv) -> int:
    return dispatch("python -m stimuli", COMMANDS, [str(a) for a in argv])


@pytest.fixture
def manifest(tmp_path, imagenet_sample) -> Path:
    rows = list(csv.DictReader(open(imagenet_sample / "manifest.csv", encoding="utf-8")))
    picked = [r for r in rows if r["category"] == "animal"][:2] + \
        [r for r in rows if r["category"] == "non-animal"][:2]
    path = tmp_path / "build.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "image_id", "category", "class_index"])
        for r in picked:
            w.writerow([imagenet_sample / r["file"], r["wnid"], r["category"], r["class_index"]])
    return path


def test_simulated_clicks_make_maps_labelled_not_human_and_a_set(manifest, tmp_path):
    clicks = tmp_path / "clicks.csv"
    assert _stimuli("simulate-clicks", "--images", manifest, "--out", clicks, "--players", 6,
                    "--truth", "contrast") == 0
    rounds = list(csv.DictReader(open(clicks, encoding="utf-8")))
    assert len(rounds) == 6 * 4
    assert all(r["player_id"].startswith(SIMULATED_PREFIX) for r in rounds)
    assert _stimuli("maps", "--clicks", clicks, "--images", manifest, "--out", tmp_path / "maps",
                    "--n-splits", 50) == 0
    record = json.loads((tmp_path / "maps" / "maps_provenance.json").read_text())
    assert record["human"] is False and "SIMULATED" in record["map_source"]
    made = list(csv.DictReader(open(tmp_path / "maps" / "build_manifest.csv", encoding="utf-8")))
    assert len(made) == 4 and all("NOT HUMAN" in r["map_source"] for r in made)
    assert _stimuli("build", "--manifest", tmp_path / "maps" / "build_manifest.csv",
                    "--out", tmp_path / "set", "--workers", 1) == 0
    info = json.loads((tmp_path / "set" / "stimulus_set.json").read_text())
    assert "SIMULATED" in info["importance_maps"]


def test_a_clicks_csv_mixing_simulated_players_and_people_is_refused(manifest, tmp_path, capsys):
    clicks = tmp_path / "clicks.csv"
    assert _stimuli("simulate-clicks", "--images", manifest, "--out", clicks, "--players", 5,
                    "--truth", "contrast") == 0
    text = clicks.read_text(encoding="utf-8").replace(f"{SIMULATED_PREFIX}001", "person-001")
    clicks.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert _stimuli("maps", "--clicks", clicks, "--images", manifest,
                    "--out", tmp_path / "maps") == 2
    assert "mixes SIMULATED players with people" in capsys.readouterr().err
    assert not (tmp_path / "maps").exists()


def test_simulate_clicks_needs_a_map_per_image_or_contrast(manifest, tmp_path, capsys):
    assert _stimuli("simulate-clicks", "--images", manifest, "--out", tmp_path / "c.csv") == 2
    assert "pass --truth contrast" in capsys.readouterr().err
    assert _stimuli("simulate-clicks", "--images", manifest, "--out", manifest,
                    "--truth", "contrast") == 2
    assert "also an input" in capsys.readouterr().err
    assert manifest.read_text(encoding="utf-8").startswith("image,image_id")


def test_maps_paint_the_bubble_size_the_game_used(tmp_path):
    from stimuli.click_maps import Round, player_maps
    path = np.array([[100.0, 100.0, 0.0]] * 1 + [[150.0, 150.0, 50.0]])
    rounds = [Round("img", "p1", "r1", "timeout", path)]
    small, _ = player_maps(rounds, min_bubbles=1)
    large, _ = player_maps(rounds, min_bubbles=1, bubble=30)
    assert small["img"]["p1"].sum() == 2 * 14 * 14
    assert large["img"]["p1"].sum() == 2 * 30 * 30
