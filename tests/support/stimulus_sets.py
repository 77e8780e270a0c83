"""Small stimulus sets in the paradigm §4 format for the experiment tests (PNG files +
manifest.csv)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from stimuli.schema import STIMULUS_MANIFEST_COLUMNS
from tests.support.data import IMAGENET_SAMPLE, require


def _photo_pixels(category: str, index: int, size: int) -> np.ndarray:
    """A centre crop of a real ImageNet photo from ../shared/data of the given category."""
    folder = require(IMAGENET_SAMPLE)
    with open(folder / "manifest.csv", encoding="utf-8", newline="") as fh:
        files = [r["file"] for r in csv.DictReader(fh) if r["category"] == category]
    img = Image.open(folder / files[index % len(files)]).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)).resize((size, size)))


def make_stimulus_set(folder: Path, n_animal: int, n_non_animal: int, n_masked: int,
                      full: bool = False, prefix: str = "img", size: int = 16,
                      photos: bool = False) -> Path:
    """Write a set with every image at ``n_masked`` log-spaced levels (+ the full condition)."""
    folder.mkdir(parents=True, exist_ok=True)
    percents = 10 ** np.linspace(0, 2, n_masked)
    levels = [(k, f"{p:.4g}") for k, p in enumerate(percents)]
    if full:
        levels.append((n_masked, ""))
    rows = []
    images = ([("animal", i) for i in range(n_animal)]
              + [("non-animal", i) for i in range(n_non_animal)])
    for n, (category, i) in enumerate(images):
        image_id = f"{prefix}{n:03d}"
        base = _photo_pixels(category, i, size) if photos else None
        for level_index, percent in levels:
            if photos:
                # Reveal a growing share of the photo over grey so each level looks different.
                share = 1.0 if percent == "" else float(percent) / 100
                pixels = (base * share + 128 * (1 - share)).astype(np.uint8)
            else:
                pixels = np.full((size, size, 3), (n * 7 + level_index * 13) % 256, np.uint8)
            name = f"{image_id}_L{level_index:02d}.png"
            Image.fromarray(pixels).save(folder / name)
            rows.append({
                "stimulus_id": f"{image_id}_L{level_index:02d}", "file": name, "image_id": image_id,
                "category": category, "class_index": "1" if category == "animal" else "500",
                "level_index": str(level_index), "level_percent": percent, "n_revealed": "",
                "budget": "", "centroid_dx": "0", "centroid_dy": "0", "seed": "0",
                "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
            })
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, STIMULUS_MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder
