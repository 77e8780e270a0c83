"""A tiny stimulus set and trial lists in the suite's schemas, for tests, benchmarks and demos."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from experiment.schema import TRIAL_LIST_COLUMNS, write_table
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS

LEVELS = (1.0, 10.0, 100.0)


def make_stimulus_set(folder: str | Path, n_images: int = 4, size: int = 256,
                      seed: int = 0) -> list[dict]:
    """Write n_images × len(LEVELS) PNGs plus manifest.csv; returns the manifest rows."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        category = "animal" if i % 2 == 0 else "non-animal"
        for li, pct in enumerate(LEVELS):
            sid = f"img{i:02d}_l{li}"
            rel = f"images/{sid}.png"
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / rel)
            rows.append({"stimulus_id": sid, "file": rel, "image_id": f"img{i:02d}",
                         "category": category, "class_index": "", "level_index": li,
                         "level_percent": pct, "n_revealed": "", "budget": "",
                         "centroid_dx": 0, "centroid_dy": 0, "seed": seed,
                         "sha256": hashlib.sha256((folder / rel).read_bytes()).hexdigest()})
    write_table(folder / "manifest.csv", rows, STIMULUS_MANIFEST_COLUMNS)
    return rows


def make_lists(manifest: list[dict], out: str | Path, n_lists: int = 3, n_blocks: int = 2,
               n_practice: int = 1, *, stimuli_dir: str | Path) -> Path:
    """Latin-square lists (level = (image + list) % levels) in one CSV; practice rows first.

    ``file`` is written relative to the list CSV's folder, as experiment.lists writes it.
    """
    out = Path(out)
    to_list = os.path.relpath(Path(stimuli_dir).resolve(), out.parent.resolve())
    manifest = [{**r, "file": Path(to_list, r["file"]).as_posix()} for r in manifest]
    images = sorted({r["image_id"] for r in manifest})
    by_key = {(r["image_id"], r["level_index"]): r for r in manifest}
    rows = []
    for k in range(n_lists):
        lid = f"L{k}"
        for p in range(n_practice):
            r = by_key[(images[p % len(images)], len(LEVELS) - 1)]
            rows.append(_row(lid, 0, p + 1, 1, r))
        for i, image in enumerate(images):
            r = by_key[(image, (i + k) % len(LEVELS))]
            block = 1 + i * n_blocks // len(images)
            rows.append(_row(lid, block, i + 1, 0, r))
    return write_table(out, rows, TRIAL_LIST_COLUMNS)


def _row(list_id: str, block: int, trial: int, practice: int, r: dict) -> dict:
    return {"list_id": list_id, "block": block, "trial": trial, "practice": practice,
            "stimulus_id": r["stimulus_id"], "file": r["file"], "image_id": r["image_id"],
            "category": r["category"], "level_index": r["level_index"],
            "level_percent": r["level_percent"]}
