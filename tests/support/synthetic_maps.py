"""Synthetic importance maps over the real ImageNet photos, for the stimulus-building tests.

The maps are SYNTHETIC (Gaussian blobs), not human data; the photos come from the shared
``imagenet-sample`` (tests/support/data.py).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from stimuli.io import BuildItem
from tests.support.data import IMAGENET_SAMPLE, require

MAP_FORMATS = (".npy", ".npz", ".png", ".jpg")


def photo_rows(n_animal: int, n_non_animal: int) -> list[dict]:
    """Rows of the real photos' manifest: the first n of each category."""
    with open(require(IMAGENET_SAMPLE) / "manifest.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    animals = [r for r in rows if r["category"] == "animal"][:n_animal]
    others = [r for r in rows if r["category"] == "non-animal"][:n_non_animal]
    return animals + others


def synthetic_map(width: int, height: int, index: int) -> np.ndarray:
    """A SYNTHETIC importance map (not human data): an off-center Gaussian blob, zero outside it;
    (h, w) at half res."""
    h, w = max(8, height // 2), max(8, round(width * max(8, height // 2) / height))
    rng = np.random.default_rng(1000 + index)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    sigma = rng.uniform(0.08, 0.2) * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    return np.where(blob > 0.05, blob, 0.0)


def save_map(arr: np.ndarray, path: Path) -> Path:
    """Save a map in the format its suffix names (.npy, .npz, 8-bit .png/.jpg)."""
    if path.suffix == ".npy":
        np.save(path, arr.astype(np.float32))
    elif path.suffix == ".npz":
        np.savez(path, map=arr)
    else:
        Image.fromarray(np.rint(arr / arr.max() * 255).astype(np.uint8)).save(path)
    return path


def make_synthetic_items(folder: Path, n_animal: int, n_non_animal: int) -> list[BuildItem]:
    """BuildItems of real photos with synthetic maps written under ``folder/synthetic_maps``."""
    maps = folder / "synthetic_maps"
    maps.mkdir(parents=True, exist_ok=True)
    items = []
    for i, row in enumerate(photo_rows(n_animal, n_non_animal)):
        image = IMAGENET_SAMPLE / row["file"]
        with Image.open(image) as im:
            w, h = im.size
        path = save_map(synthetic_map(w, h, i), maps / f"synthetic_{i:03d}{MAP_FORMATS[i % 4]}")
        items.append(BuildItem(image, path, Path(row["file"]).stem, row["category"],
                               int(row["class_index"])))
    return items
