"""The fast pixel orders equal their plain definitions: best-first growth, and the fill order
only skipped when unreachable."""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from scipy import ndimage

from stimuli.masks import _fill_order, grow_order, nested_pixel_order


def plain_grow(priority: np.ndarray, shape: tuple[int, int], n: int) -> list[int]:
    """Best-first 4-connected growth as paradigm §2 words it: the best frontier pixel each step."""
    h, w = shape
    rank = {int(p): r for r, p in enumerate(priority)}
    seed = int(priority[0])
    frontier, seen, out = [(0, seed)], {seed}, []
    while frontier and len(out) < n:
        _, p = heapq.heappop(frontier)
        out.append(p)
        y, x = divmod(p, w)
        for qy, qx in ((y, x - 1), (y, x + 1), (y - 1, x), (y + 1, x)):
            q = qy * w + qx
            if 0 <= qy < h and 0 <= qx < w and q not in seen:
                seen.add(q)
                heapq.heappush(frontier, (rank[q], q))
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (13, 17), (32, 32)])
def test_grow_order_is_best_first_growth_for_any_priorities(shape):
    rng = np.random.default_rng(sum(shape))
    size = shape[0] * shape[1]
    for _ in range(5):
        priority = rng.permutation(size)
        for n in sorted({0, 1, 2, size // 3, size}):
            assert grow_order(priority, shape, n).tolist() == plain_grow(priority, shape, n)


def two_blobs() -> np.ndarray:
    """A SYNTHETIC map: a small strong blob and a large weaker one, apart; 8-bit levels (ties)."""
    yy, xx = np.mgrid[0:256, 0:256]
    m = np.exp(-((yy - 60) ** 2 + (xx - 60) ** 2) / 200.0) \
        + 0.5 * np.exp(-((yy - 190) ** 2 + (xx - 190) ** 2) / 3000.0)
    m[m < 0.05] = 0
    return np.rint(m / m.max() * 255) / 255


@pytest.mark.parametrize("method", ["rank", "grow", "pgrow"])
def test_orders_equal_the_full_fill_definition_whatever_the_budget(method):
    imp = two_blobs()
    labels, n_regions = ndimage.label(imp > 0)
    seed_blob = int((labels == labels[60, 60]).sum())
    support = int((imp > 0).sum())
    assert n_regions == 2 and seed_blob + 500 < support
    # Budgets inside the seed's blob, past it (growth must cross the zero gap: fill reached),
    # inside the support (rank needs no fill), and past the support.
    for n in (100, seed_blob + 500, support - 10, support + 3000):
        fast = nested_pixel_order(imp, method, n, np.random.default_rng(7))
        rng = np.random.default_rng(7)
        flat = imp.ravel()
        pos = np.flatnonzero(flat > 0)
        if method == "pgrow":
            head = pos[np.argsort(-(np.log(flat[pos]) + rng.gumbel(size=pos.size)), kind="stable")]
        else:
            head = pos[np.lexsort((rng.random(pos.size), -flat[pos]))]
        full = np.concatenate([head, _fill_order(imp, np.flatnonzero(flat <= 0), rng)])
        plain = full[:n] if method == "rank" else grow_order(full, imp.shape, n)
        assert np.array_equal(fast, plain), n
