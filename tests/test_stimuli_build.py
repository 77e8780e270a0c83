"""A stimulus set built from the real ImageNet photos with synthetic maps: the paradigm §1-2
properties."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from stimuli.build import build_stimulus_set
from stimuli.config import BuildConfig
from stimuli.io import BuildItem, read_build_manifest
from stimuli.manifest import read_stimulus_manifest
from stimuli.masks import level_counts
from stimuli.render import plan_image, render_level
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS
from tests.support.synthetic_maps import make_synthetic_items


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A default-config set (pgrow, 11 levels + full) of 6 + 6 real photos, built on 2 workers."""
    root = tmp_path_factory.mktemp("set")
    items = make_synthetic_items(root, 6, 6)
    config = BuildConfig(maps_note="SYNTHETIC test maps (Gaussian blobs), not human maps")
    out = build_stimulus_set(items, root / "out", config, workers=2, progress=False)
    return items, config, out, read_stimulus_manifest(out)


@pytest.fixture(scope="module")
def plans(built):
    """Each image's plan (source, order, noise) recomputed through the public API."""
    items, config, _, _ = built
    return {it.image_id: plan_image(it, config) for it in items}


def test_manifest_has_exactly_the_spec_columns_and_every_stimulus(built):
    items, config, out, rows = built
    with open(out / "manifest.csv", encoding="utf-8") as fh:
        assert tuple(fh.readline().strip().split(",")) == STIMULUS_MANIFEST_COLUMNS
    assert len(rows) == len(items) * (len(config.levels_percent) + 1)
    assert all((out / r["file"]).is_file() for r in rows)
    assert [f.name for f in out.parent.iterdir() if f.name.startswith(".")] == []


def test_every_image_reveals_the_same_number_of_pixels_at_each_level(built, plans):
    items, config, out, rows = built
    counts = level_counts(config.levels_percent, config.budget)
    assert counts[-1] == config.budget == 16384 and counts[0] == 164
    for k, n in enumerate(counts):
        at_level = [r for r in rows if r["level_index"] == k]
        assert len(at_level) == len(items)
        assert {r["n_revealed"] for r in at_level} == {int(n)}
        assert all(r["level_percent"] == pytest.approx(config.levels_percent[k], rel=1e-5)
                   for r in at_level)
    for item in items[:4]:  # recount from the masks themselves
        plan = plans[item.image_id]
        assert [int(render_level(plan, int(n))[1].sum()) for n in counts] == list(counts)


def test_revealed_pixels_equal_the_source_and_the_rest_is_the_noise(built, plans):
    items, config, out, rows = built
    for item in items:
        plan = plans[item.image_id]
        for r in (r for r in rows if r["image_id"] == item.image_id and r["level_percent"]):
            png = np.asarray(Image.open(out / r["file"]))
            stim, mask, _, _ = render_level(plan, r["n_revealed"])
            assert np.array_equal(png, stim)
            ys, xs = np.divmod(plan.order[:r["n_revealed"]], config.size)
            dy, dx = np.argwhere(mask).min(0) - np.array([ys.min(), xs.min()])
            assert np.array_equal(png[ys + dy, xs + dx], plan.source[ys, xs])
            assert np.array_equal(png[~mask], plan.noise[~mask])


def test_masks_are_nested_across_levels(built, plans):
    items, config, _, _ = built
    counts = level_counts(config.levels_percent, config.budget)
    for item in items:
        order = plans[item.image_id].order
        masks = [set(order[:n].tolist()) for n in counts]
        assert len(masks[-1]) == config.budget
        assert all(a < b for a, b in zip(masks, masks[1:], strict=False))


def test_centroid_is_centered_within_a_pixel_and_the_residual_recorded(built, plans):
    items, config, out, rows = built
    c = (config.size - 1) / 2
    for r in (r for r in rows if r["level_percent"]):
        png = np.asarray(Image.open(out / r["file"]))
        mask = render_level(plans[r["image_id"]], r["n_revealed"])[1]
        ys, xs = np.nonzero(mask)
        assert ys.size == r["n_revealed"] and png.shape == (256, 256, 3)
        assert r["centroid_dy"] == pytest.approx(ys.mean() - c, abs=1e-4)
        assert r["centroid_dx"] == pytest.approx(xs.mean() - c, abs=1e-4)
        assert abs(r["centroid_dy"]) <= 1 and abs(r["centroid_dx"]) <= 1


def test_full_image_condition_follows_the_levels_unmasked(built, plans):
    items, config, out, rows = built
    full = [r for r in rows if r["level_percent"] is None]
    assert len(full) == len(items)
    assert {r["level_index"] for r in full} == {len(config.levels_percent)}
    assert all(r["centroid_dx"] is None and r["n_revealed"] == 256 * 256 for r in full)
    for r in full:
        assert np.array_equal(np.asarray(Image.open(out / r["file"])), plans[r["image_id"]].source)


def test_stimulus_set_json_records_parameters_versions_and_maps_note(built):
    items, config, out, rows = built
    info = json.loads((out / "stimulus_set.json").read_text())
    assert info["config"]["budget"] == 16384 and info["config"]["order"] == "pgrow"
    assert info["config"]["levels_percent"] == list(config.levels_percent)
    assert "numpy" in info["provenance"]["versions"] and info["n_stimuli"] == len(rows)
    assert "SYNTHETIC" in info["importance_maps"]
    assert ({i["image_id"]: i["seed"] for i in info["images"]}
            == {r["image_id"]: r["seed"] for r in rows})


def test_contact_sheet_shows_images_by_levels(built):
    items, config, out, _ = built
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (150 + 12 * 132, 22 + 12 * 132)
    # the full-image column of the first row is the photo itself, not noise or white
    tile = np.asarray(sheet.convert("RGB"))[22:22 + 128, 150 + 11 * 132:150 + 11 * 132 + 128]
    assert tile.std() > 10


def test_rank_order_reveals_most_important_pixels_first(tmp_path):
    items = make_synthetic_items(tmp_path, 2, 0)
    config = BuildConfig(order="rank")
    from stimuli.render import load_item
    for item in items:
        _, imp = load_item(item, 256)
        plan = plan_image(item, config)
        vals = imp.ravel()[plan.order]
        positive = int((imp > 0).sum())
        head = vals[:min(positive, config.budget)]
        assert np.all(np.diff(head) <= 0)


def test_build_manifest_path_and_folders_give_the_same_set(tmp_path):
    items = make_synthetic_items(tmp_path, 2, 1)
    with open(tmp_path / "build.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "map", "image_id", "category", "class_index"])
        for it in items:
            w.writerow([it.image, it.map, it.image_id, it.category, it.class_index])
    assert read_build_manifest(tmp_path / "build.csv") == [
        BuildItem(it.image, it.map, it.image_id, it.category, it.class_index,
                  str(tmp_path / "build.csv"))
        for it in items]
    config = BuildConfig(levels_percent=(10.0, 100.0), full=False)
    a = build_stimulus_set(tmp_path / "build.csv", tmp_path / "a", config, workers=1,
                           progress=False)
    for it in items:
        (tmp_path / "imgs" / it.category).mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / it.category / it.image.name).symlink_to(it.image)
        (tmp_path / "maps").mkdir(exist_ok=True)
        (tmp_path / "maps" / f"{it.image_id}{it.map.suffix}").symlink_to(it.map)
    from stimuli.io import items_from_folders
    b = build_stimulus_set(items_from_folders(tmp_path / "imgs", tmp_path / "maps"), tmp_path / "b",
                           config, workers=1, progress=False)
    sha = {r["stimulus_id"]: r["sha256"] for r in read_stimulus_manifest(a)}
    assert len(sha) == 6
    assert {r["stimulus_id"]: r["sha256"] for r in read_stimulus_manifest(b)} == sha
