"""One image's stimuli: load and crop, plan (pixel order, noise), compose each level, encode, write.

Runs inside the build's worker processes: each worker loads, renders and encodes its own
images and sends back only manifest rows, so no image array crosses a process boundary.
"""

from __future__ import annotations

import hashlib
import io
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from stimuli.io import BuildItem, check_aspect, load_image, load_map
from stimuli.masks import centering_shift, level_counts, nested_pixel_order, resize_center_crop
from stimuli.noise import amplitude_spectrum, noise_background
from suite.errors import InputError

if TYPE_CHECKING:
    from stimuli.config import BuildConfig


def image_seed(set_seed: int, image_id: str) -> int:
    """Per-image seed from the set seed and the image id only, so adding images leaves others
    unchanged."""
    words = np.frombuffer(hashlib.sha256(image_id.encode("utf-8")).digest(), dtype="<u4")
    state = np.random.SeedSequence([int(set_seed), *map(int, words)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2 ** 63 - 1))


@dataclass(frozen=True)
class ImagePlan:
    """One image prepared for all its levels: source (S,S,3) uint8, reveal order (budget,),
    noise (S,S,3) uint8."""

    source: np.ndarray
    order: np.ndarray
    noise: np.ndarray
    noise_unclipped: np.ndarray
    seed: int


def load_item(item: BuildItem, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Load, check and resize/crop one item: ((S,S,3) uint8 image, (S,S) float32 map)."""
    image, importance = load_image(item.image), load_map(item.map)
    check_aspect(image, importance, item.map, item.image)
    src, imp = resize_center_crop(image, importance, size)
    if not (imp > 0).any():
        raise InputError(f"{item.map}: no importance left inside the center crop; supply a map "
                         "whose important region lies in the image's central square")
    return src, imp


def plan_image(item: BuildItem, config: BuildConfig,
               amplitude: np.ndarray | None = None) -> ImagePlan:
    """Everything about one image that does not depend on the level: source, pixel order, noise."""
    src, imp = load_item(item, config.size)
    seed = image_seed(config.seed, item.image_id)
    # Separate streams: changing the pixel order never changes the noise, and vice versa.
    order_ss, noise_ss = np.random.SeedSequence(seed).spawn(2)
    order = nested_pixel_order(imp, config.order, config.budget, np.random.default_rng(order_ss))
    noise, unclipped = noise_background(src, np.random.default_rng(noise_ss), amplitude)
    return ImagePlan(src, order, noise, unclipped, seed)


def _compose(plan: ImagePlan, n: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The stimulus revealing the first ``n`` pixels, centered: ((S,S,3) uint8, (n,) flat targets,
    dy, dx residual)."""
    size = plan.source.shape[0]
    idx = plan.order[:n]
    ys, xs = np.divmod(idx, size)
    dy, dx, ry, rx = centering_shift(ys, xs, (size, size))
    # The clamp keeps every shifted pixel on the canvas, so the 2-D shift is a flat offset.
    dst = idx + (dy * size + dx)
    stim = plan.noise.copy()
    stim.reshape(-1, 3)[dst] = plan.source.reshape(-1, 3)[idx]
    return stim, dst, ry, rx


def render_level(plan: ImagePlan, n: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The stimulus revealing the first ``n`` pixels, centered: ((S,S,3) uint8, (S,S) bool mask,
    dy, dx residual)."""
    stim, dst, ry, rx = _compose(plan, n)
    mask = np.zeros(stim.shape[:2], dtype=bool)
    mask.reshape(-1)[dst] = True
    return stim, mask, ry, rx


def encode_png(array: np.ndarray, level: int) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image at zlib ``level``, Huffman-only deflate."""
    buf = io.BytesIO()
    # Huffman-only deflate: noise has few repeated strings, so LZ77 matching costs time and
    # saves ~nothing (measured: 4x faster than Pillow's default, files no larger).
    Image.fromarray(array).save(buf, format="PNG", compress_level=level,
                                compress_type=zlib.Z_HUFFMAN_ONLY)
    return buf.getvalue()


_SET_AMPLITUDE: np.ndarray | None = None


def init_worker(amplitude: np.ndarray | None) -> None:
    """Give this process the set-average spectrum (or None), once, instead of with every task."""
    global _SET_AMPLITUDE
    _SET_AMPLITUDE = amplitude


def render_item(args: tuple[BuildItem, BuildConfig, str]) -> tuple[list[dict], float, float]:
    """Render and write all stimuli of one image; returns (manifest rows, encode s, total s)."""
    item, config, tmp_dir = args
    start = time.perf_counter()
    plan = plan_image(item, config, _SET_AMPLITUDE)
    counts = level_counts(config.levels_percent, config.budget)
    jobs = [(i, p, int(n))
            for i, (p, n) in enumerate(zip(config.levels_percent, counts, strict=True))]
    if config.full:
        jobs.append((len(counts), None, config.size * config.size))
    rows, encode_s = [], 0.0
    for level_index, percent, n in jobs:
        if percent is None:
            stim, ry, rx = plan.source, None, None
        else:
            stim, _, ry, rx = _compose(plan, n)
        t0 = time.perf_counter()
        data = encode_png(stim, config.png_compress_level)
        encode_s += time.perf_counter() - t0
        stimulus_id = f"{item.image_id}_L{level_index:02d}"
        rel = f"stimuli/{stimulus_id}.png"
        with open(Path(tmp_dir) / rel, "wb") as fh:
            fh.write(data)
        rows.append({
            "stimulus_id": stimulus_id, "file": rel, "image_id": item.image_id,
            "category": item.category,
            "class_index": "" if item.class_index is None else item.class_index,
            "level_index": level_index,
            "level_percent": "" if percent is None else f"{percent:.6g}",
            "n_revealed": n, "budget": config.budget,
            "centroid_dx": "" if rx is None else f"{rx:.4f}",
            "centroid_dy": "" if ry is None else f"{ry:.4f}",
            "seed": plan.seed, "sha256": hashlib.sha256(data).hexdigest(),
        })
    return rows, encode_s, time.perf_counter() - start


def item_amplitude(args: tuple[BuildItem, int]) -> np.ndarray:
    """One image's per-channel amplitude spectrum (for the set average): (3, S, S//2+1)."""
    item, size = args
    return amplitude_spectrum(load_item(item, size)[0])
