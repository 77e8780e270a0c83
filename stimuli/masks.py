"""Which pixels a stimulus reveals: resize and crop, nested pixel orders, level counts, centering."""

from __future__ import annotations

import heapq

import numpy as np
from PIL import Image
from scipy import ndimage

ORDERS = ("rank", "grow", "pgrow")
# Blur (px) that spreads importance into the zero pixels next to it, so that a budget larger
# than a map's support keeps growing around the important region rather than at random.
FILL_BLUR_SIGMA = 8.0


def crop_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The centered square (left, top, right, bottom) in source pixels that the shorter side spans."""
    side = min(width, height)
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return left, top, left + side, top + side


def resize_center_crop(image: np.ndarray, importance: np.ndarray, size: int = 256
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Shorter side to ``size``, center crop, same geometry for both: ((S,S,3) uint8, (S,S) float32)."""
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


def _fill_order(importance: np.ndarray, zero_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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


def rank_order(importance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices, most important first; ties broken by a seeded jitter: (H*W,) int64."""
    imp = importance.astype(np.float64).ravel()
    pos = np.flatnonzero(imp > 0)
    jitter = rng.random(pos.size)
    head = pos[np.lexsort((jitter, -imp[pos]))]
    return np.concatenate([head, _fill_order(importance, np.flatnonzero(imp <= 0), rng)])


def _gumbel_order(importance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Plackett-Luce sample of the important pixels (log importance + Gumbel noise, sorted), then the fill order."""
    imp = importance.astype(np.float64).ravel()
    pos = np.flatnonzero(imp > 0)
    key = np.log(imp[pos]) + rng.gumbel(size=pos.size)
    head = pos[np.argsort(-key, kind="stable")]
    return np.concatenate([head, _fill_order(importance, np.flatnonzero(imp <= 0), rng)])


def grow_order(priority_order: np.ndarray, shape: tuple[int, int], n: int) -> np.ndarray:
    """First ``n`` pixels of best-first 4-connected region growth from ``priority_order[0]``: (n,) int64.

    ``priority_order`` lists flat indices best first; each step adds the best frontier pixel.
    """
    h, w = shape
    size = h * w
    rank = np.empty(size, dtype=np.int64)
    rank[priority_order] = np.arange(size)
    # The growth is inherently sequential; integer ranks on a C heap keep it ~1 us a step.
    rank_list, order_list = rank.tolist(), priority_order.tolist()
    queued = bytearray(size)
    seed = order_list[0]
    heap, out = [0], []
    queued[seed] = 1
    pop, push, append = heapq.heappop, heapq.heappush, out.append
    last_row = size - w
    for _ in range(min(n, size)):
        p = order_list[pop(heap)]
        append(p)
        x = p % w
        if x and not queued[p - 1]:
            queued[p - 1] = 1
            push(heap, rank_list[p - 1])
        if x < w - 1 and not queued[p + 1]:
            queued[p + 1] = 1
            push(heap, rank_list[p + 1])
        if p >= w and not queued[p - w]:
            queued[p - w] = 1
            push(heap, rank_list[p - w])
        if p < last_row and not queued[p + w]:
            queued[p + w] = 1
            push(heap, rank_list[p + w])
    return np.asarray(out, dtype=np.int64)


def nested_pixel_order(importance: np.ndarray, method: str, n: int,
                       rng: np.random.Generator) -> np.ndarray:
    """The first ``n`` flat pixel indices to reveal, best first; level masks are its prefixes: (n,) int64."""
    if method == "rank":
        return rank_order(importance, rng)[:n]
    if method == "grow":
        return grow_order(rank_order(importance, rng), importance.shape, n)
    if method == "pgrow":
        return grow_order(_gumbel_order(importance, rng), importance.shape, n)
    raise ValueError(f"unknown pixel order {method!r}; use one of {ORDERS}")


def level_counts(levels_percent: tuple[float, ...], budget: int) -> np.ndarray:
    """Revealed pixels per level: round(p/100 * budget), at least 1: (n_levels,) int64."""
    counts = np.rint(np.asarray(levels_percent, dtype=np.float64) / 100.0 * budget).astype(np.int64)
    return np.clip(counts, 1, budget)


def centering_shift(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]
                    ) -> tuple[int, int, float, float]:
    """Integer shift (dy, dx) putting the pixels' centroid on the canvas center, clamped to keep them inside.

    Returns (dy, dx, residual_dy, residual_dx): the residual is the shifted centroid minus the
    canvas center ((H-1)/2, (W-1)/2), in px; within 0.5 px unless the clamp bound.
    """
    h, w = shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    my, mx = ys.mean(), xs.mean()
    dy = int(np.clip(np.rint(cy - my), -ys.min(), h - 1 - ys.max()))
    dx = int(np.clip(np.rint(cx - mx), -xs.min(), w - 1 - xs.max()))
    return dy, dx, float(my + dy - cy), float(mx + dx - cx)
