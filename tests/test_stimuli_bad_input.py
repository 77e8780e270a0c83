"""Each bad input of issue 2 raises one InputError naming the file, and leaves no output behind."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from stimuli.build import build_stimulus_set
from stimuli.config import BuildConfig
from stimuli.io import items_from_folders
from suite.errors import InputError
from suite.outputs import MARK
from tests.support.synthetic_maps import make_synthetic_items, save_map

CONFIG = BuildConfig(levels_percent=(10.0, 100.0), full=False)


def _manifest(folder: Path, items, edit=None) -> Path:
    """Write a build manifest of ``items`` (as rows; ``edit`` may change them) into ``folder``."""
    rows = [{"image": str(it.image), "map": str(it.map), "image_id": it.image_id,
             "category": it.category, "class_index": it.class_index} for it in items]
    if edit:
        edit(rows)
    path = folder / "build.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh,
                                fieldnames=["image", "map", "image_id", "category", "class_index"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def setup(tmp_path):
    items = make_synthetic_items(tmp_path, 2, 1)
    return tmp_path, items


def _bad_map(value_setter):
    def edit(folder: Path, items):
        arr = np.load(items[0].map)  # item 0's map is the .npy one
        value_setter(arr)
        path = save_map(arr, folder / "synthetic_bad.npy")
        return lambda rows: rows[0].update(map=str(path)), "synthetic_bad.npy"
    return edit


def _copy_garbage(name: str, column: str):
    def edit(folder: Path, items):
        path = folder / name
        path.write_bytes(b"this is not an image at all")
        return lambda rows: rows[1].update({column: str(path)}), name
    return edit


def _set(column: str, value: str, expect: str):
    def edit(folder: Path, items):
        return lambda rows: rows[1].update({column: value}), expect
    return edit


def _aspect(folder: Path, items):
    arr = np.ones((100, 100), np.float32)  # the photo is not square
    path = save_map(arr, folder / "synthetic_square.npy")
    return lambda rows: rows[2].update(map=str(path)), "synthetic_square.npy"


def _duplicate(folder: Path, items):
    return lambda rows: rows[1].update(image_id=rows[0]["image_id"]), "duplicate image_id"


CASES = {
    "missing image": _set("image", "no_such_photo.JPEG", "no_such_photo.JPEG"),
    "missing map": _set("map", "no_such_map.npy", "no_such_map.npy"),
    "unreadable image": _copy_garbage("broken.jpg", "image"),
    "unreadable map": _copy_garbage("broken_map.png", "map"),
    "map with NaN": _bad_map(lambda a: a.__setitem__((0, 0), np.nan)),
    "map with inf": _bad_map(lambda a: a.__setitem__((1, 1), np.inf)),
    "negative map": _bad_map(lambda a: a.__setitem__((2, 2), -0.5)),
    "all-zero map": _bad_map(lambda a: a.__setitem__(slice(None), 0.0)),
    "duplicate image ids": _duplicate,
    "unknown category": _set("category", "vehicle", "unknown category 'vehicle'"),
    "map aspect differs from image": _aspect,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_one_clear_error_and_leaves_no_output(setup, case):
    folder, items = setup
    edit, expect = CASES[case](folder, items)
    manifest = _manifest(folder, items, edit)
    out = folder / "sets" / "out"
    with pytest.raises(InputError) as err:
        build_stimulus_set(manifest, out, CONFIG, workers=2, progress=False)
    message = str(err.value)
    assert expect in message
    assert str(folder) in message or "build.csv" in message  # names the file
    assert not out.exists() and not (folder / "sets").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_non_empty_output_folder_is_refused_unless_overwrite(setup):
    folder, items = setup
    out = folder / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work")
    with pytest.raises(InputError, match="not empty.*--overwrite") as err:
        build_stimulus_set(items, out, CONFIG, workers=1, progress=False)
    assert str(out) in str(err.value)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # --overwrite replaces only a folder the suite made (it carries the mark)
    (out / MARK).write_text("{}")
    build_stimulus_set(items, out, CONFIG, overwrite=True, workers=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [MARK, "contact_sheet.png", "manifest.csv",
                                                     "stimuli", "stimulus_set.json"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_failed_overwrite_keeps_the_previous_set(setup):
    folder, items = setup
    out = build_stimulus_set(items, folder / "out", CONFIG, workers=1, progress=False)
    before = (out / "manifest.csv").read_bytes()
    edit, _ = CASES["map with NaN"](folder, items)
    with pytest.raises(InputError, match="NaN"):
        build_stimulus_set(_manifest(folder, items, edit), out, CONFIG, overwrite=True,
                           workers=2, progress=False)
    assert (out / "manifest.csv").read_bytes() == before


def test_folder_mode_rejects_an_unknown_category_folder_and_a_missing_map(setup):
    folder, items = setup
    images, maps = folder / "imgs", folder / "maps"
    (images / "animal").mkdir(parents=True)
    maps.mkdir()
    shutil.copy(items[0].image, images / "animal" / items[0].image.name)
    with pytest.raises(InputError, match="no map named") as err:
        items_from_folders(images, maps)
    assert items[0].image.name in str(err.value)
    np.save(maps / f"{items[0].image_id}.npy", np.load(items[0].map))
    assert [it.image_id for it in items_from_folders(images, maps)] == [items[0].image_id]
    (images / "vehicles").mkdir()
    with pytest.raises(InputError, match="unknown category folder 'vehicles'"):
        items_from_folders(images, maps)


def test_bad_options_raise_input_errors():
    with pytest.raises(InputError, match="budget"):
        BuildConfig(budget=70000)
    with pytest.raises(InputError, match="levels"):
        BuildConfig(levels_percent=(10.0, 5.0))
    with pytest.raises(InputError, match="order"):
        BuildConfig(order="random")
