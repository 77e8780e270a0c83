"""python -m stimuli maps: clicks CSV → maps readable by stimuli build and models where; NOT HUMAN
maps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stimuli.__main__ import COMMANDS
from stimuli.click_maps import CLICKS_COLUMNS, bubble_map, disc_kernel
from stimuli.io import load_map, read_build_manifest
from stimuli.simulated_players import hidden_map, simulate_clicks
from suite.command_line import dispatch


def _cli(*argv) -> int:
    return dispatch("python -m stimuli", COMMANDS, [str(a) for a in argv])


def _images(tmp: Path, n: int = 4) -> Path:
    rng = np.random.default_rng(0)
    (tmp / "img").mkdir()
    rows = []
    for i in range(n):
        size = (256, 256) if i else (300, 200)  # one image not in the 256×256 frame
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(
            tmp / f"img/i{i}.png")
        rows.append({"image": f"img/i{i}.png", "image_id": f"i{i}",
                     "category": "animal" if i % 2 else "non-animal", "class_index": ""})
    with open(tmp / "images.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "image_id", "category", "class_index"])
        w.writeheader()
        w.writerows(rows)
    return tmp / "images.csv"


def _clicks(tmp: Path, players: dict[str, int]) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for image_id, n in players.items():
        rows += simulate_clicks({image_id: hidden_map(rng)}, n, seed=len(rows))
    for k, r in enumerate(rows):
        r["round_id"] = f"r{k}"
    with open(tmp / "clicks.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CLICKS_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return tmp / "clicks.csv"


def test_bubble_is_a_14_px_square_and_the_disc_21_px_across():
    m = bubble_map(np.array([[100.5, 50.2, 0.0]]))
    ys, xs = np.nonzero(m)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (43, 56, 93, 106)
    k = disc_kernel(21)
    assert k.shape == (21, 21) and k[10, 0] > 0 and k[0, 0] == 0
    assert k.sum() == pytest.approx(1.0)


def test_maps_from_clicks_feed_build_and_where(tmp_path, capsys):
    from models.where import load_map as where_load_map
    from models.where import read_where_set

    images = _images(tmp_path)
    clicks = _clicks(tmp_path, {"i0": 6, "i1": 6, "i2": 5, "i3": 3})
    out = tmp_path / "maps"
    assert _cli("maps", "--clicks", clicks, "--images", images, "--out", out,
                "--n-splits", "50") == 0
    assert "left out: i3 (3 players < 5)" in capsys.readouterr().out
    items = read_build_manifest(out / "build_manifest.csv")         # stimuli build's reader
    assert [it.image_id for it in items] == ["i0", "i1", "i2"]
    for it in read_where_set(out / "build_manifest.csv", None):     # models where's reader
        m = where_load_map(it["map"])
        assert m.shape == (256, 256) and m.min() == 0 and m.max() == pytest.approx(1)
        assert Image.open(it["image"]).size == (256, 256)
    assert load_map(items[0].map).max() == pytest.approx(1)
    with np.load(out / "participant_maps.npz") as z:                 # --participant-maps form
        assert sorted(z.files) == ["i0", "i1", "i2"]
        assert z["i0"].shape == (6, 256, 256) and z["i2"].shape == (5, 256, 256)
    with open(out / "reliability.csv", newline="") as fh:
        rel = list(csv.DictReader(fh))
    assert [r["image_id"] for r in rel] == ["i0", "i1", "i2"]
    assert all(-1 <= float(r["split_half_rho"]) <= 1 for r in rel)
    with open(out / "excluded.csv", newline="") as fh:
        assert [r["image_id"] for r in csv.DictReader(fh)] == ["i3"]
    prov = json.loads((out / "maps_provenance.json").read_text())
    # the clicks came from SIMULATED players: the maps must not pass for human ones
    assert "SIMULATED" in prov["map_source"] and prov["human"] is False
    assert prov["provenance"]["parameters"]["blur_px"] == 21
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_path_is_refused_and_nothing_is_written(tmp_path, capsys):
    images = _images(tmp_path)
    clicks = _clicks(tmp_path, {"i0": 5})
    text = clicks.read_text().splitlines()
    text[2] = text[2].replace('"[[', '"[[300,').replace("[[300,", "[[300,5,0],[", 1)
    clicks.write_text("\n".join(text) + "\n")
    assert _cli("maps", "--clicks", clicks, "--images", images, "--out", tmp_path / "m") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 3" in err and "outside" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("kind, words", [("contrast", "colour-contrast"),
                                         ("centre", "centre Gaussian")])
def test_maps_without_people_are_labelled_not_human(tmp_path, kind, words):
    images = _images(tmp_path)
    out = tmp_path / kind
    assert _cli("maps", "--from", kind, "--images", images, "--out", out) == 0
    with open(out / "build_manifest.csv", newline="") as fh:
        sources = {r["map_source"] for r in csv.DictReader(fh)}
    assert len(sources) == 1
    source = sources.pop()
    assert source.startswith("NOT HUMAN") and words in source
    prov = json.loads((out / "maps_provenance.json").read_text())
    assert prov["map_source"].startswith("NOT HUMAN") and words in prov["map_source"]
    assert prov["human"] is False
    assert len(read_build_manifest(out / "build_manifest.csv")) == 4


def test_build_carries_not_human_into_the_set(tmp_path):
    images = _images(tmp_path)
    maps = tmp_path / "contrast"
    assert _cli("maps", "--from", "contrast", "--images", images, "--out", maps) == 0
    out = tmp_path / "set"
    assert _cli("build", "--manifest", maps / "build_manifest.csv", "--out", out, "--levels", "10",
                "100", "--workers", "1") == 0
    info = json.loads((out / "stimulus_set.json").read_text())
    assert info["importance_maps"].startswith("NOT HUMAN: colour-contrast")
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB")).astype(int)
    corner = sheet[:20, :140]
    red = (corner[..., 0] > 150) & (corner[..., 1] < 100) & (corner[..., 2] < 100)
    assert red.sum() > 20  # the red "NOT HUMAN MAPS" title
