"""Importance maps from ClickMe-style rounds: the clicks CSV, bubble maps, disc blur (paradigm §6).

The clicks CSV is the contract between the game's ``export-clicks`` and ``stimuli maps``
(docs/maps.md): one row per round, ``image_id, player_id, round_id, outcome, points,
n_bubbles, path``; ``path`` is a JSON list of ``[x, y, t_ms]`` bubble centres in the
image's 256×256 frame, a bubble being a 14×14 px square.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import signal

from stimuli.io import _check_labels, load_image
from suite.errors import InputError

FRAME = 256            # the game shows every image in a 256×256 frame (ClickMe's size)
BUBBLE = 14            # bubble side, px
CLICKS_COLUMNS = ("image_id", "player_id", "round_id", "outcome", "points", "n_bubbles", "path")
OUTCOMES = ("recognized", "timeout", "skip")
IMAGE_LIST_COLUMNS = ("image", "image_id", "category")


@dataclass(frozen=True)
class Round:
    """One round of the game: who played which image, what happened, the bubble centres."""

    image_id: str
    player_id: str
    round_id: str
    outcome: str
    path: np.ndarray  # (n, 3) float: x, y, t_ms


@dataclass(frozen=True)
class ImageEntry:
    """An image named by a build manifest (its map, if any, is not needed here)."""

    image: Path
    image_id: str
    category: str
    class_index: int | None


def _read_csv(path: Path, what: str) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts) of a UTF-8 CSV (a byte-order mark allowed), or one InputError."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what} ({err.strerror}); "
                         "check the path") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 CSV file; save it as UTF-8 CSV") from err


def read_image_list(path: str | Path) -> list[ImageEntry]:
    """Rows of a build manifest, ``map`` optional: image, image_id, category, class_index."""
    path = Path(path)
    header, rows = _read_csv(path, "build manifest")
    missing = [c for c in IMAGE_LIST_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; a build manifest "
                         "has image, image_id, category (and class_index, map)")
    out, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path} line {line}"
        image_id, category = (row["image_id"] or "").strip(), (row["category"] or "").strip()
        _check_labels(image_id, category, where)
        if image_id in seen:
            raise InputError(f"{where}: duplicate image_id {image_id!r}; "
                             "give every image its own id")
        seen.add(image_id)
        raw = (row.get("class_index") or "").strip()
        if raw and (not raw.isdigit() or int(raw) > 999):
            raise InputError(f"{where}: class_index {raw!r} is not an ImageNet class 0-999")
        if not (row["image"] or "").strip():
            raise InputError(f"{where}: empty image path; fill the image column")
        out.append(ImageEntry(path.parent / row["image"].strip(), image_id, category,
                              int(raw) if raw else None))
    if not out:
        raise InputError(f"{path}: no images listed; add at least one row")
    return out


def frame_image(path: Path) -> np.ndarray:
    """The image as the game shows it: (256, 256, 3) uint8, the whole image resized, no crop."""
    image = load_image(path)
    if image.shape[:2] == (FRAME, FRAME):
        return image
    return np.asarray(Image.fromarray(image).resize((FRAME, FRAME), Image.Resampling.BILINEAR))


def _parse_path(text: str, where: str) -> np.ndarray:
    try:
        pts = json.loads(text or "[]")
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: path is not JSON ({err.msg}); "
                         "write a list of [x, y, t_ms]") from err
    if not isinstance(pts, list) or not all(
            isinstance(p, list) and len(p) == 3 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in p) for p in pts):
        raise InputError(f"{where}: path must be a JSON list of [x, y, t_ms] numbers")
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(arr).all():
        raise InputError(f"{where}: path has a non-finite value")
    xy = arr[:, :2]
    if ((xy < 0) | (xy >= FRAME)).any():
        raise InputError(f"{where}: a bubble centre lies outside the {FRAME}x{FRAME} frame "
                         f"(x and y must be in 0..{FRAME - 1})")
    if (np.diff(arr[:, 2]) < 0).any() or (arr[:, 2] < 0).any():
        raise InputError(f"{where}: bubble times must be >= 0 and never decrease")
    return arr


def read_clicks(path: str | Path) -> list[Round]:
    """Every round of a clicks CSV, checked (docs/maps.md gives the format)."""
    path = Path(path)
    header, rows = _read_csv(path, "clicks CSV")
    required = ("image_id", "player_id", "round_id", "outcome", "path")
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; the header must be "
                         f"{','.join(CLICKS_COLUMNS)}")
    rounds, seen = [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{path} line {line}"
        key = (row["player_id"] or "").strip(), (row["round_id"] or "").strip()
        if not all(key) or not (row["image_id"] or "").strip():
            raise InputError(f"{where}: empty image_id, player_id or round_id")
        if key in seen:
            raise InputError(f"{where}: round {key[1]!r} of player {key[0]!r} appears twice")
        seen.add(key)
        outcome = (row["outcome"] or "").strip()
        if outcome not in OUTCOMES:
            raise InputError(f"{where}: outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        pts = _parse_path(row["path"], where)
        n = (row.get("n_bubbles") or "").strip()
        if n and (not n.isdigit() or int(n) != len(pts)):
            raise InputError(f"{where}: n_bubbles {n} but the path holds {len(pts)} bubbles")
        rounds.append(Round(row["image_id"].strip(), key[0], key[1], outcome, pts))
    if not rounds:
        raise InputError(f"{path}: no rounds; the clicks CSV has a header only")
    return rounds


def bubble_map(path: np.ndarray, size: int = FRAME, bubble: int = BUBBLE) -> np.ndarray:
    """Binary (size, size) float32 map: a ``bubble``-px square at each centre of ``path``.

    The square of a centre (x, y) covers columns
    floor(x) − bubble//2 … floor(x) + bubble − bubble//2 − 1
    (7 left, 6 right for 14 px), rows likewise, clipped at the frame.
    """
    before, after = bubble // 2, bubble - bubble // 2 - 1   # 7 and 6 for 14 px
    # centres marked in a frame padded so that every window below stays inside it
    marks = np.zeros((size + bubble, size + bubble), np.int32)
    if len(path):
        xs = np.floor(path[:, 0]).astype(int) + after + 1
        ys = np.floor(path[:, 1]).astype(int) + after + 1
        np.add.at(marks, (ys, xs), 1)
    # pixel (r, c) is covered when a centre lies in rows r − after … r + before (cols alike):
    # a box sum over that window from a summed-area table, > 0
    s = np.pad(marks.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    r = np.arange(size)
    # padded indices of r − after and r + before + 1
    top, bottom = r + 1, r + after + 1 + before + 1
    out = (s[bottom][:, bottom] - s[top][:, bottom] - s[bottom][:, top] + s[top][:, top])
    return (out > 0).astype(np.float32)


def disc_kernel(diameter: int) -> np.ndarray:
    """Flat disc of ``diameter`` px (pixels within diameter/2 of the centre), summing to 1."""
    r = diameter / 2.0
    half = int(math.floor(r))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    k = ((xx**2 + yy**2) <= r * r).astype(np.float64)
    return k / k.sum()


def blur_twice(maps: np.ndarray, diameter: int) -> np.ndarray:
    """The disc blur applied twice to (H, W) or (N, H, W) maps, as a mean over in-frame pixels.

    Each pass averages the pixels of the disc that lie inside the frame (normalized
    convolution). A zero-padded blur would lower every map's border alike: unrelated maps
    then correlate (ρ ≈ 0.4 for white noise, measured), which the null must not show.
    """
    k = disc_kernel(diameter)
    arr = np.asarray(maps, dtype=np.float64)
    if k.shape == (1, 1):
        return arr.astype(np.float32)
    h, w = arr.shape[-2:]
    norm = signal.fftconvolve(np.ones((h, w)), k, mode="same")
    kern = k if arr.ndim == 2 else k[None]
    out = arr
    for _ in range(2):
        out = signal.fftconvolve(out, kern, mode="same", axes=(-2, -1)) / norm
    return np.maximum(out, 0.0).astype(np.float32)   # FFT round-off below zero


def minmax(m: np.ndarray) -> np.ndarray:
    """Scale a map to 0–1 (float32); a constant map is returned as zeros."""
    lo, hi = float(m.min()), float(m.max())
    if hi <= lo:
        return np.zeros_like(m, dtype=np.float32)
    return ((m - lo) / (hi - lo)).astype(np.float32)


def player_maps(rounds: list[Round], min_bubbles: int, keep_skipped: bool = False,
                bubble: int = BUBBLE) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """{image_id: {player_id: mean of that player's kept binary round maps}} and drop counts."""
    by: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    dropped = {"too_few_bubbles": 0, "skipped": 0}
    for r in rounds:
        if r.outcome == "skip" and not keep_skipped:
            dropped["skipped"] += 1
            continue
        if len(r.path) < min_bubbles:
            dropped["too_few_bubbles"] += 1
            continue
        by[r.image_id][r.player_id].append(bubble_map(r.path, bubble=bubble))
    out = {img: {p: np.mean(ms, axis=0, dtype=np.float64).astype(np.float32)
                 for p, ms in sorted(players.items())} for img, players in by.items()}
    return out, dropped


def aggregate(per_player: np.ndarray, blur_px: int) -> np.ndarray:
    """(P, H, W) player maps → the image's map: mean over players, disc blur twice, min–max."""
    return minmax(blur_twice(per_player.mean(axis=0), blur_px))
