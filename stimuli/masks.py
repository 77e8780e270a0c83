"""Which pixels a stimulus reveals: resize and crop, nested pixel orders, level counts,
centering."""

from __future__ import annotations

import heapq
from array import array

import numpy as np
from PIL import Image
from scipy import ndimage

ORDERS = ("rank", "grow", "pgrow")
# Blur (px) that spreads importance into the zero pixels next to it, so that a budget larger
# than a map's support keeps growing around the important region rather than at random.
FILL_BLUR_SIGMA = 8.0


def crop_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The centered square (left, top, right, bottom) in source pixels that the shorter side
    spans."""
    side = min(width, height)
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return left, top, left + side, top + side


def resize_center_crop(image: np.ndarray, importance: np.ndarray, size: int = 256
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Shorter side to ``size``, center crop, same geometry for both: ((S,S,3) uint8,
    (S,S) float32)."""
    ih, iw = image.shape[:2]
    mh, mw = importance.shape
    # One box in normalized coordinates, scaled to each array, so a map stored at another
    # resolution than its image is cut and resampled over exactly the same region.
    left, top, right, bottom = crop_box(iw, ih)
    box_i = (left, top, right, bottom)
    box_m = (left * mw / iw, top * mh / ih, right * mw / iw, bottom * mh / ih)
    img = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC, box=box_i)
    # Bilinear keeps the map non-negative (bicubic can overshoot below zero).
    imp = Image.fromarray(importance.astype(np.float32)).resize(
        (size, size), Image.Resampling.BILINEAR, box=box_m)
    return np.asarray(img, dtype=np.uint8), np.maximum(np.asarray(imp, dtype=np.float32), 0.0)


def _fill_order(importance: np.ndarray, zero_idx: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Flat indices of the zero-importance pixels in fill order: nearest to importance first."""
    h, w = importance.shape
    # Ordered by the blurred map (importance spreading into its surround), then by distance
    # to the importance-weighted centroid, then by a seeded jitter.
    blurred = ndimage.gaussian_filter(importance.astype(np.float64), FILL_BLUR_SIGMA,
                                      mode="constant").ravel()[zero_idx]
    ys, xs = np.divmod(zero_idx, w)
    yy, xx = np.mgrid[0:h, 0:w]
    total = importance.sum()
    cy, cx = (importance * yy).sum() / total, (importance * xx).sum() / total
    dist = np.hypot(ys - cy, xs - cx)
    jitter = rng.random(zero_idx.size)
    return zero_idx[np.lexsort((jitter, dist, -blurred))]


def _then_fill(importance: np.ndarray, head: np.ndarray, n: int | None, grow: bool,
               rng: np.random.Generator) -> np.ndarray:
    """``head`` (the important pixels in order) followed by the zero pixels in fill order:
    (H*W,) int64.

    The fill order (a blur and a three-key sort, the costliest part of ordering) only matters
    when the first ``n`` pixels can reach a zero pixel: when the map has fewer than ``n``
    important pixels, or, for growth, when the 4-connected important region holding the seed
    does. Otherwise the zero pixels follow in index order: they are never among the first
    ``n``, so the result is the same, and the jitter they would draw is drawn last anyway.
    """
    zero = np.flatnonzero(importance.ravel() <= 0)
    needed = n is None or head.size < n
    if not needed and grow and zero.size:
        labels, _ = ndimage.label(importance > 0)
        needed = int(np.count_nonzero(labels.ravel() == labels.ravel()[head[0]])) < n
    return np.concatenate([head, _fill_order(importance, zero, rng) if needed else zero])


def rank_order(importance: np.ndarray, rng: np.random.Generator, n: int | None = None,
               grow: bool = False) -> np.ndarray:
    """Flat pixel indices, most important first; ties broken by a seeded jitter: (H*W,) int64.

    With ``n``, only the first ``n`` (or, with ``grow``, what growth over ``n`` steps can
    reach) are guaranteed to be in fill order; see ``_then_fill``.
    """
    imp = importance.astype(np.float64).ravel()
    pos = np.flatnonzero(imp > 0)
    jitter = rng.random(pos.size)
    head = pos[np.lexsort((jitter, -imp[pos]))]
    return _then_fill(importance, head, n, grow, rng)


def _gumbel_order(importance: np.ndarray, rng: np.random.Generator,
                  n: int | None = None) -> np.ndarray:
    """Plackett-Luce sample of the important pixels (log importance + Gumbel noise, sorted),
    then the fill order."""
    imp = importance.astype(np.float64).ravel()
    pos = np.flatnonzero(imp > 0)
    key = -(np.log(imp[pos]) + rng.gumbel(size=pos.size))
    # The default sort is ~6x faster than a stable one and agrees with it whenever the keys
    # are distinct (continuous noise: practically always); ties fall back to the stable sort.
    idx = np.argsort(key)
    ordered = key[idx]
    if (ordered[1:] == ordered[:-1]).any():
        idx = np.argsort(key, kind="stable")
    return _then_fill(importance, pos[idx], n, True, rng)


def grow_order(priority_order: np.ndarray, shape: tuple[int, int], n: int) -> np.ndarray:
    """First ``n`` pixels of best-first 4-connected region growth from ``priority_order[0]``:
    (n,) int64.

    ``priority_order`` lists flat indices best first; each step adds the best frontier pixel.
    """
    h, w = shape
    size, pw = h * w, w + 2
    n = min(n, size)
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    # The growth is inherently sequential. It runs on integer ranks over a canvas padded by a
    # one-pixel border marked as already queued (no bounds checks), with a C heap; a new
    # neighbour better than the whole frontier is taken at once by heappushpop (a "climb").
    ys, xs = np.divmod(np.asarray(priority_order, dtype=np.int64), w)
    padded = (ys + 1) * pw + xs + 1
    rank = np.zeros((h + 2) * pw, dtype=np.int64)
    rank[padded] = np.arange(size)
    border = np.ones((h + 2, pw), dtype=np.uint8)
    border[1:-1, 1:-1] = 0
    queued = bytearray(border.tobytes())
    rank_of, pixel_of = array("q", rank.tobytes()), array("q", padded.tobytes())
    queued[pixel_of[0]] = 1
    heap, out = [], []
    pop, push, pushpop, append = heapq.heappop, heapq.heappush, heapq.heappushpop, out.append
    r = 0
    for _ in range(n - 1):
        append(r)
        p = pixel_of[r]
        new = -1
        q = p - 1
        if not queued[q]:
            queued[q] = 1
            new = rank_of[q]
        q = p + 1
        if not queued[q]:
            queued[q] = 1
            if new >= 0:
                push(heap, new)
            new = rank_of[q]
        q = p - pw
        if not queued[q]:
            queued[q] = 1
            if new >= 0:
                push(heap, new)
            new = rank_of[q]
        q = p + pw
        if not queued[q]:
            queued[q] = 1
            if new >= 0:
                push(heap, new)
            new = rank_of[q]
        r = pushpop(heap, new) if new >= 0 else pop(heap)
    append(r)
    return np.asarray(priority_order, dtype=np.int64)[np.asarray(out, dtype=np.int64)]


def nested_pixel_order(importance: np.ndarray, method: str, n: int,
                       rng: np.random.Generator) -> np.ndarray:
    """The first ``n`` flat pixel indices to reveal, best first; level masks are its prefixes:
    (n,) int64."""
    if method == "rank":
        return rank_order(importance, rng, n)[:n]
    if method == "grow":
        return grow_order(rank_order(importance, rng, n, grow=True), importance.shape, n)
    if method == "pgrow":
        return grow_order(_gumbel_order(importance, rng, n), importance.shape, n)
    raise ValueError(f"unknown pixel order {method!r}; use one of {ORDERS}")


def level_counts(levels_percent: tuple[float, ...], budget: int) -> np.ndarray:
    """Revealed pixels per level: round(p/100 * budget), at least 1: (n_levels,) int64."""
    counts = np.rint(np.asarray(levels_percent, dtype=np.float64) / 100.0 * budget).astype(np.int64)
    return np.clip(counts, 1, budget)


def centering_shift(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]
                    ) -> tuple[int, int, float, float]:
    """Integer shift (dy, dx) putting the pixels' centroid on the canvas center, clamped to keep
    them inside.

    Returns (dy, dx, residual_dy, residual_dx): the residual is the shifted centroid minus the
    canvas center ((H-1)/2, (W-1)/2), in px; within 0.5 px unless the clamp bound.
    """
    h, w = shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    my, mx = ys.mean(), xs.mean()
    dy = int(np.clip(np.rint(cy - my), -ys.min(), h - 1 - ys.max()))
    dx = int(np.clip(np.rint(cx - mx), -xs.min(), w - 1 - xs.max()))
    return dy, dx, float(my + dy - cy), float(mx + dx - cx)
