"""How reliable click maps are: split-half Spearman, the other-image null, the centre-bias control.

paradigm §6: split the players of an image into random halves, Spearman ρ between the two
half-maps (each made like the image's map: mean over its players, disc blur twice), mean
over 1,000 splits. Null: the same, one half of image i against a half of another image
(drawn afresh each split). Centre-bias control: each image's map against the mean map of
all other images. ρ is computed on a ``grid``×``grid`` block-mean of the blurred 256×256
maps (default 64: the maps are blurred by a 21-px disc twice, so 4×4 blocks lose little
and the 1,000 splits stay fast); ``grid=256`` gives full resolution.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from stimuli.click_maps import blur_twice

N_SPLITS = 1000
GRID = 64
_CHUNK_FLOATS = 2e7  # float32 values held per chunk of splits (~80 MB for each half)


@dataclass
class Reliability:
    """Per-image figures, in the order of the maps given."""

    n_players: np.ndarray
    split_half: np.ndarray     # mean over splits of ρ(half A, half B)
    split_half_sd: np.ndarray  # SD over splits
    null: np.ndarray           # mean over splits of ρ(half A of this image, half B of another)
    centre_bias: np.ndarray    # ρ(this image's map, mean map of the other images)

    @property
    def spearman_brown(self) -> np.ndarray:
        """Split-half ρ stepped up to all players: 2ρ / (1 + ρ)."""
        return 2 * self.split_half / (1 + self.split_half)


def _blocks(maps: np.ndarray, grid: int) -> np.ndarray:
    """(P, H, W) → (P, grid²) block means; H and W must be multiples of grid."""
    p, h, w = maps.shape
    if h % grid or w % grid:
        raise ValueError(f"maps of {h}x{w} do not split into a {grid}x{grid} grid")
    return maps.reshape(p, grid, h // grid, grid, w // grid).mean(axis=(2, 4)).reshape(p, -1)


def _z_ranks(rows: np.ndarray) -> np.ndarray:
    """Rows → their average ranks, centred and scaled so that mean(za * zb) is Spearman's ρ."""
    r = rankdata(rows, axis=1).astype(np.float32)
    r -= r.mean(axis=1, keepdims=True)
    sd = r.std(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, r / sd, np.nan).astype(np.float32)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ of two maps (average ranks for ties); NaN when one is constant."""
    za, zb = _z_ranks(np.ravel(a)[None]), _z_ranks(np.ravel(b)[None])
    return float(np.mean(za * zb))


def _half_weights(rng: np.random.Generator, n_splits: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_splits, p) weights of the two halves of random splits; odd p leaves one out."""
    order = rng.permuted(np.tile(np.arange(p), (n_splits, 1)), axis=1)
    half = p // 2
    wa, wb = np.zeros((n_splits, p), np.float32), np.zeros((n_splits, p), np.float32)
    rows = np.arange(n_splits)[:, None]
    wa[rows, order[:, :half]] = 1.0 / half
    wb[rows, order[:, half:2 * half]] = 1.0 / half
    return wa, wb


def reliability(player_maps: list[np.ndarray], blur_px: int, n_splits: int = N_SPLITS,
                seed: int = 0, grid: int = GRID) -> Reliability:
    """Split-half ρ, null and centre-bias control of images whose (P_i, H, W) player maps are given.

    The blur is linear, so each player's map is blurred once and a half-map is a weighted
    mean of blurred player maps: all splits of an image are one matrix product.
    """
    n = len(player_maps)
    blurred = [_blocks(blur_twice(m, blur_px).reshape(m.shape), grid) for m in player_maps]
    sizes = np.array([b.shape[0] for b in blurred])
    rng = np.random.default_rng(seed)
    weights = [_half_weights(rng, n_splits, p) if p >= 2 else None for p in sizes]
    other = (np.arange(n)[None, :] + rng.integers(1, max(n, 2), (n_splits, 1))) % max(n, 1)
    g = grid * grid
    chunk = max(1, int(_CHUNK_FLOATS // (n * g)))
    rho = np.full((n, n_splits), np.nan, np.float32)
    null = np.full((n, n_splits), np.nan, np.float32)
    for s0 in range(0, n_splits, chunk):
        s1 = min(n_splits, s0 + chunk)
        za = np.full((n, s1 - s0, g), np.nan, np.float32)
        zb = np.full((n, s1 - s0, g), np.nan, np.float32)
        for i, (b, w) in enumerate(zip(blurred, weights, strict=True)):
            if w is not None:
                za[i] = _z_ranks(w[0][s0:s1] @ b)
                zb[i] = _z_ranks(w[1][s0:s1] @ b)
        rho[:, s0:s1] = np.einsum("nsg,nsg->ns", za, zb) / g
        if n >= 2:
            partner = other[s0:s1].T                          # (n, chunk): the other image
            zb_other = zb[partner, np.arange(s1 - s0)[None, :]]
            null[:, s0:s1] = np.einsum("nsg,nsg->ns", za, zb_other) / g
    finals = np.stack([b.mean(axis=0) for b in blurred])
    centre = np.full(n, np.nan)
    if n >= 2:
        scaled = (finals - finals.min(1, keepdims=True)) / np.maximum(
            np.ptp(finals, axis=1, keepdims=True), 1e-12)   # min–max, as the maps are written
        total = scaled.sum(axis=0)
        centre = np.array([spearman(scaled[i], (total - scaled[i]) / (n - 1)) for i in range(n)])
    with np.errstate(invalid="ignore"):
        return Reliability(sizes, np.nanmean(rho, 1) if n_splits else rho[:, 0],
                           np.nanstd(rho, 1), np.nanmean(null, 1), centre)


def reliability_rows(image_ids: list[str], rel: Reliability) -> list[dict]:
    """The reliability table: one row per image."""
    def f(v):
        return "" if not np.isfinite(v) else f"{v:.4f}"
    return [{"image_id": i, "n_players": int(rel.n_players[k]),
             "split_half_rho": f(rel.split_half[k]),
             "split_half_sd": f(rel.split_half_sd[k]),
             "spearman_brown_rho": f(rel.spearman_brown[k]),
             "null_rho": f(rel.null[k]), "centre_bias_rho": f(rel.centre_bias[k])}
            for k, i in enumerate(image_ids)]


RELIABILITY_COLUMNS = ("image_id", "n_players", "split_half_rho", "split_half_sd",
                       "spearman_brown_rho", "null_rho", "centre_bias_rho")


def reliability_figure(image_ids: list[str], rel: Reliability, title: str = "") -> bytes:
    """A PNG: per image (sorted by split-half ρ) the split-half ρ, the null and the centre-bias
    control."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(rel.split_half)
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(order) + 2), 3.6), dpi=100)
    for values, label, marker in ((rel.split_half, "split-half ρ", "o"),
                                  (rel.centre_bias, "centre-bias control ρ", "s"),
                                  (rel.null, "null: other image ρ", "x")):
        mean = np.nanmean(values) if np.isfinite(values).any() else np.nan
        ax.plot(x, values[order], marker, label=f"{label} (mean {mean:.2f})", ms=4)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylim(-0.5, 1.0)
    ax.set_xlabel("image (sorted by split-half ρ)")
    ax.set_ylabel("Spearman ρ")
    if len(order) <= 30:
        ax.set_xticks(x, [image_ids[k] for k in order], rotation=90, fontsize=6)
    ax.set_title(title or "Click-map reliability (paradigm §6)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
