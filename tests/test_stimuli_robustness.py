"""Issue 12 for stimulus sets: high-bit-depth photos, bounded options, safe output folders.

Each test here failed before its fix: 16-bit photos built all-white stimuli, ``--size`` and
``--workers`` took any value, a failed build could leave a hidden folder or new parents,
``--overwrite`` replaced any folder, the demo deleted ``OUT-inputs/`` unasked, a README in
an ``--images`` folder broke the build, and set folders were made 0700 whatever the umask.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import zlib
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stimuli.build
import stimuli.demo
from stimuli.build import build_stimulus_set
from stimuli.config import MAX_SIZE, BuildConfig
from stimuli.io import BuildItem, items_from_folders, load_image
from stimuli.manifest import read_stimulus_manifest
from stimuli.render import plan_image, render_level
from suite.command_line import dispatch
from suite.errors import InputError
from suite.outputs import MARK
from tests.support.data import IMAGENET_SAMPLE
from tests.support.permissions import unwritable
from tests.support.synthetic_maps import make_synthetic_items, photo_rows, save_map, synthetic_map

ROOT = Path(__file__).resolve().parents[1]
SMALL = BuildConfig(size=64, budget=1024, levels_percent=(10.0, 50.0, 100.0), full=False)
COMMANDS = {"build": ("stimuli.build", ""), "demo": ("stimuli.demo", "")}


def _cli(*argv: str) -> int:
    """``python -m stimuli`` in this process (so monkeypatches apply)."""
    return dispatch("python -m stimuli", COMMANDS, argv=list(argv))


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stimuli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if p.name != MARK)


def _gray_photo() -> tuple[Path, np.ndarray]:
    row = photo_rows(1, 0)[0]
    path = IMAGENET_SAMPLE / row["file"]
    with Image.open(path) as im:
        return path, np.asarray(im.convert("L"))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_png16_rgb(path: Path, rgb16: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), written by hand."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                     + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))
    return path


# ---- item 1: 16-bit and other high-bit-depth photographs -------------------------------------

def test_16bit_grayscale_png_reveals_the_8bit_photos_pixels(tmp_path):
    photo, gray8 = _gray_photo()
    h, w = gray8.shape
    Image.fromarray(gray8).save(tmp_path / "gray8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    with Image.open(tmp_path / "gray16.png") as im:
        assert im.mode == "I;16"
    mp = save_map(synthetic_map(w, h, 0), tmp_path / "map.npy")
    item8 = BuildItem(tmp_path / "gray8.png", mp, "photo", "animal", 1)
    item16 = BuildItem(tmp_path / "gray16.png", mp, "photo", "animal", 1)
    assert np.array_equal(load_image(item16.image), load_image(item8.image))
    out = build_stimulus_set([item16], tmp_path / "set", SMALL, workers=1, progress=False)
    plan8 = plan_image(item8, SMALL)
    rows = read_stimulus_manifest(out)
    assert len(rows) == 3
    for r in rows:
        png = np.asarray(Image.open(out / r["file"])).astype(int)
        stim8, mask, _, _ = render_level(plan8, r["n_revealed"])
        assert mask.sum() == r["n_revealed"]
        assert np.abs(png[mask] - stim8[mask].astype(int)).max() <= 1
        assert png[mask].mean() < 250  # not the clipped all-white image


def test_16bit_rgb_png_reads_as_the_8bit_photo(tmp_path):
    photo, _ = _gray_photo()
    with Image.open(photo) as im:
        rgb8 = np.asarray(im.convert("RGB"))
    path = _write_png16_rgb(tmp_path / "rgb16.png", rgb8.astype(np.uint16) * 257)
    assert np.abs(load_image(path).astype(int) - rgb8).max() <= 1


def test_16bit_png_transparent_value_is_composited_over_white(tmp_path):
    values = (np.arange(16, dtype=np.uint16) * 4000).reshape(4, 4)
    Image.fromarray(values).save(tmp_path / "t16.png", transparency=4000)
    gray = load_image(tmp_path / "t16.png")[..., 2]
    assert gray[0, 1] == 255  # the transparent value
    assert [gray[0, 0], gray[0, 2], gray[3, 3]] == [0, round(8000 / 257), round(60000 / 257)]


def test_float_and_32bit_images_are_scaled_or_refused_by_mode(tmp_path):
    _, gray8 = _gray_photo()
    Image.fromarray(gray8.astype(np.float32) / 255).save(tmp_path / "unit.tiff")
    assert np.abs(load_image(tmp_path / "unit.tiff")[..., 0].astype(int) - gray8).max() <= 1
    Image.fromarray(gray8.astype(np.int32) * 257).save(tmp_path / "int.tiff")
    assert np.abs(load_image(tmp_path / "int.tiff")[..., 1].astype(int) - gray8).max() <= 1
    Image.fromarray(gray8.astype(np.float32)).save(tmp_path / "float255.tiff")
    with pytest.raises(InputError, match=r"float255\.tiff.*mode F.*outside 0\.\.1"):
        load_image(tmp_path / "float255.tiff")
    Image.fromarray(gray8.astype(np.int32) * 100000).save(tmp_path / "wide.tiff")
    with pytest.raises(InputError, match=r"wide\.tiff.*mode I\b.*outside 0\.\.65535"):
        load_image(tmp_path / "wide.tiff")
    Image.new("LAB", (8, 8)).save(tmp_path / "lab.tiff")
    with pytest.raises(InputError, match=r"lab\.tiff: image mode 'LAB' is not supported"):
        load_image(tmp_path / "lab.tiff")


# ---- item 11: bounded sizes; nothing left behind by a failure -------------------------------

def test_size_is_bounded_when_the_command_line_is_read(tmp_path):
    proc = _run("build", "--manifest", str(tmp_path / "b.csv"), "--out", str(tmp_path / "o"),
                "--size", "100000")
    assert proc.returncode == 2
    assert "--size" in proc.stderr and f"must be ≤ {MAX_SIZE}" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
    with pytest.raises(InputError, match=f"size {MAX_SIZE + 1} outside 8..{MAX_SIZE}"):
        BuildConfig(size=MAX_SIZE + 1)
    BuildConfig(size=MAX_SIZE)  # the bound itself is allowed


def _fail_rendering(args):
    raise MemoryError("injected")


def _kill_worker(args):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_failure_while_rendering_leaves_no_hidden_folder_and_no_new_parents(tmp_path,
                                                                              monkeypatch):
    items = make_synthetic_items(tmp_path / "in", 1, 1)
    monkeypatch.setattr(stimuli.build, "render_item", _fail_rendering)
    out = tmp_path / "new" / "deeper" / "set"
    with pytest.raises(InputError, match="out of memory.*--size 64"):
        build_stimulus_set(items, out, SMALL, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert _hidden(tmp_path) == []


def test_a_killed_worker_is_one_error_and_keeps_the_earlier_set(tmp_path, monkeypatch):
    items = make_synthetic_items(tmp_path / "in", 1, 1)
    out = build_stimulus_set(items, tmp_path / "set", SMALL, workers=1, progress=False)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(stimuli.build, "render_item", _kill_worker)
    with pytest.raises(InputError, match="worker process died"):
        build_stimulus_set(items, out, SMALL, overwrite=True, workers=2, progress=False)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _hidden(tmp_path) == []


# ---- item 18: --workers 0 --------------------------------------------------------------------

@pytest.mark.parametrize("command", ["build", "demo"])
def test_workers_zero_is_refused_at_parse_time(tmp_path, command):
    extra = ["--manifest", str(tmp_path / "b.csv")] if command == "build" else []
    proc = _run(command, *extra, "--out", str(tmp_path / "o"), "--workers", "0")
    assert proc.returncode == 2 and "--workers" in proc.stderr and "must be ≥ 1" in proc.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o-inputs").exists()


def test_workers_zero_is_refused_by_the_python_api(tmp_path):
    items = make_synthetic_items(tmp_path, 1, 0)
    with pytest.raises(InputError, match="workers 0"):
        build_stimulus_set(items, tmp_path / "set", SMALL, workers=0, progress=False)
    assert not (tmp_path / "set").exists()


# ---- item 19: non-image files in an --images folder -----------------------------------------

def test_non_image_and_hidden_files_in_the_images_folder_are_skipped(tmp_path):
    items = make_synthetic_items(tmp_path, 1, 1)
    images, maps = tmp_path / "imgs", tmp_path / "maps"
    maps.mkdir()
    for it in items:
        (images / it.category).mkdir(parents=True, exist_ok=True)
        (images / it.category / it.image.name).symlink_to(it.image)
        (maps / f"{it.image_id}{it.map.suffix}").symlink_to(it.map)
    expected = [it.image_id for it in items]
    (images / "README.txt").write_text("where the photos came from")
    (images / "animal" / "README.txt").write_text("notes")
    (images / "animal" / "licence.md").write_text("CC-BY")
    (images / "non-animal" / ".DS_Store").write_bytes(b"\0")
    (images / ".thumbnails").mkdir()
    assert [it.image_id for it in items_from_folders(images, maps)] == expected
    out = tmp_path / "set"
    assert _cli("build", "--images", str(images), "--maps", str(maps), "--out", str(out),
                "--size", "64", "--budget", "1024", "--levels", "50", "100", "--workers", "1") == 0
    assert {r["image_id"] for r in read_stimulus_manifest(out)} == set(expected)


# ---- item 20: folders follow the umask -------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_set_folders_follow_the_umask(tmp_path, umask):
    items = make_synthetic_items(tmp_path, 1, 0)
    old = os.umask(umask)
    try:
        out = build_stimulus_set(items, tmp_path / "set", SMALL, workers=1, progress=False)
    finally:
        os.umask(old)
    want = 0o777 & ~umask
    assert (out.stat().st_mode & 0o777, (out / "stimuli").stat().st_mode & 0o777) == (want, want)


# ---- item 20 / 10: --overwrite replaces only the suite's folders ------------------------------

def test_overwrite_replaces_a_set_the_suite_made_and_refuses_any_other_folder(tmp_path):
    items = make_synthetic_items(tmp_path / "in", 1, 0)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match=f"not made by this suite.*{MARK}") as err:
        build_stimulus_set(items, mine, SMALL, overwrite=True, workers=1, progress=False)
    assert str(mine) in str(err.value)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    out = build_stimulus_set(items, tmp_path / "set", SMALL, workers=1, progress=False)
    assert (out / MARK).is_file()
    again = build_stimulus_set(items, out, BuildConfig(size=32, budget=256, levels_percent=(100.0,),
                                                       full=False),
                               overwrite=True, workers=1, progress=False)
    assert [r["n_revealed"] for r in read_stimulus_manifest(again)] == [256]
    assert _hidden(tmp_path) == []


# ---- item 16: output paths that cannot be used ----------------------------------------------

def _manifest(tmp_path: Path) -> Path:
    items = make_synthetic_items(tmp_path / "in", 1, 0)
    path = tmp_path / "in" / "build.csv"
    path.write_text("image,map,image_id,category,class_index\n"
                    f"{items[0].image},{items[0].map},{items[0].image_id},animal,1\n")
    return path


@pytest.mark.parametrize("case", ["a file", "under a file", "unwritable", "holds the manifest"])
def test_build_refuses_an_unusable_output_path_in_one_line(tmp_path, capsys, case):
    manifest = _manifest(tmp_path)
    (tmp_path / "afile").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    out, expect = {
        "a file": (tmp_path / "afile", "exists and is not a folder"),
        "under a file": (tmp_path / "afile" / "set", "is a file, not a folder"),
        "unwritable": (locked / "set", "permission denied"),
        "holds the manifest": (manifest.parent, "holds the input"),
    }[case]
    with unwritable(locked) if case == "unwritable" else nullcontext():
        code = _cli("build", "--manifest", str(manifest), "--out", str(out), "--overwrite",
                    "--size", "64", "--budget", "1024", "--workers", "1")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert expect in err and str(out) in err
    assert (tmp_path / "afile").read_text() == "x" and list(locked.iterdir()) == []
    assert manifest.is_file() and _hidden(tmp_path) == []


@pytest.mark.parametrize("case", ["a file", "under a file", "unwritable"])
def test_demo_refuses_an_unusable_output_path_in_one_line(tmp_path, capsys, case):
    (tmp_path / "afile").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    out, expect = {
        "a file": (tmp_path / "afile", "exists and is not a folder"),
        "under a file": (tmp_path / "afile" / "demo", "is a file, not a folder"),
        "unwritable": (locked / "demo", "permission denied"),
    }[case]
    with unwritable(locked) if case == "unwritable" else nullcontext():
        code = _cli("demo", "--out", str(out), "--workers", "1")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and expect in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "locked"]
    assert list(locked.iterdir()) == []


# ---- item 10: the demo's two folders ---------------------------------------------------------

def test_demo_keeps_an_existing_inputs_folder_without_overwrite(tmp_path, capsys):
    inputs = tmp_path / "demo-inputs"
    inputs.mkdir()
    (inputs / "my_photos.txt").write_text("mine")
    assert _cli("demo", "--out", str(tmp_path / "demo"), "--workers", "1") == 2
    err = capsys.readouterr().err
    assert str(inputs) in err and "--overwrite" in err
    assert [p.name for p in inputs.iterdir()] == ["my_photos.txt"]
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("which", ["demo", "demo-inputs"])
def test_demo_overwrite_refuses_a_folder_the_suite_did_not_make(tmp_path, capsys, which):
    theirs = tmp_path / which
    theirs.mkdir()
    (theirs / "data.csv").write_text("precious")
    assert _cli("demo", "--out", str(tmp_path / "demo"), "--overwrite", "--workers", "1") == 2
    err = capsys.readouterr().err
    assert "not made by this suite" in err and str(theirs) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [which]
    assert [p.name for p in theirs.iterdir()] == ["data.csv"]


def test_demo_overwrite_replaces_its_own_folders_made_under_the_umask(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setattr(stimuli.demo, "DEMO_IMAGES", stimuli.demo.DEMO_IMAGES[3:5])
    out = tmp_path / "demo"
    old = os.umask(0o022)
    try:
        assert _cli("demo", "--out", str(out), "--workers", "1") == 0
        first = (out / "manifest.csv").read_bytes()
        assert _cli("demo", "--out", str(out), "--workers", "1") == 2
        assert _cli("demo", "--out", str(out), "--overwrite", "--workers", "1", "--seed", "3") == 0
    finally:
        os.umask(old)
    assert (out / "manifest.csv").read_bytes() != first  # rebuilt with another seed
    inputs = tmp_path / "demo-inputs"
    assert (out / MARK).is_file() and (inputs / MARK).is_file()
    assert [out.stat().st_mode & 0o777, inputs.stat().st_mode & 0o777] == [0o755, 0o755]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo-inputs"]
    assert _hidden(tmp_path) == []
