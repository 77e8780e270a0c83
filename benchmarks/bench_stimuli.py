"""Benchmark: a paper-sized stimulus set (200 images x 11 levels) by the suite vs a \
straightforward reference.

The images are the 80 real photographs in ../shared/data/imagenet-sample, reused to reach
200; each copy gets its own SYNTHETIC importance map (an off-center Gaussian blob, not
human data). The reference computes each stimulus on its own, on one core: the pixel order
is recomputed per level, the noise FFT per stimulus, PNGs are saved with Pillow's default
settings. Its primitives are the straightforward ones (defined below, as the suite first
had them: the full fill-order sort, a plain heap loop, numpy FFTs, angle/exp phases), so
the suite's own speed-ups of those primitives count for the suite. A second reference run
uses the suite's current primitives and PNG encoder in the same per-stimulus structure, to
show how much comes from the structure alone (reuse across levels, two workers). Both are
timed on the first images only (stimuli per second is a rate; every level of each image is
done). All produce the same pixels; the script checks that on a sample."""

from __future__ import annotations

import argparse
import csv
import heapq
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stimuli.build import build_stimulus_set  # noqa: E402
from stimuli.config import BuildConfig  # noqa: E402
from stimuli.io import BuildItem  # noqa: E402
from stimuli.manifest import read_stimulus_manifest  # noqa: E402
from stimuli.masks import centering_shift, level_counts, nested_pixel_order  # noqa: E402
from stimuli.noise import noise_background  # noqa: E402
from stimuli.render import encode_png, image_seed, load_item  # noqa: E402
from tests.support.data import IMAGENET_SAMPLE as PHOTOS  # noqa: E402


def synthetic_items(folder: Path, n: int) -> list[BuildItem]:
    """``n`` items: the real photos in turn, each with its own synthetic blob map (.npy)."""
    with open(PHOTOS / "manifest.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    items = []
    for i in range(n):
        row = rows[i % len(rows)]
        with Image.open(PHOTOS / row["file"]) as im:
            w, h = im.size
        mh, mw = h // 2, round(w * (h // 2) / h)
        rng = np.random.default_rng(i)
        cy, cx = rng.uniform(0.3, 0.7) * mh, rng.uniform(0.3, 0.7) * mw
        sigma = rng.uniform(0.1, 0.25) * min(mh, mw)
        yy, xx = np.mgrid[0:mh, 0:mw]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
        path = folder / f"synthetic_map_{i:03d}.npy"
        np.save(path, np.where(blob > 0.05, blob, 0.0).astype(np.float32))
        items.append(BuildItem(PHOTOS / row["file"], path,
                               f"{Path(row['file']).stem}_copy{i // len(rows)}",
                               row["category"], int(row["class_index"])))
    return items


# --- The straightforward primitives (the suite's first versions), for the reference only ---

def _naive_fill(importance, zero_idx, rng):
    h, w = importance.shape
    blurred = ndimage.gaussian_filter(importance.astype(np.float64), 8.0,
                                      mode="constant").ravel()[zero_idx]
    ys, xs = np.divmod(zero_idx, w)
    yy, xx = np.mgrid[0:h, 0:w]
    total = importance.sum()
    cy, cx = (importance * yy).sum() / total, (importance * xx).sum() / total
    jitter = rng.random(zero_idx.size)
    return zero_idx[np.lexsort((jitter, np.hypot(ys - cy, xs - cx), -blurred))]


def _naive_priority(importance, method, rng):
    imp = importance.astype(np.float64).ravel()
    pos = np.flatnonzero(imp > 0)
    if method == "pgrow":
        head = pos[np.argsort(-(np.log(imp[pos]) + rng.gumbel(size=pos.size)), kind="stable")]
    else:
        head = pos[np.lexsort((rng.random(pos.size), -imp[pos]))]
    return np.concatenate([head, _naive_fill(importance, np.flatnonzero(imp <= 0), rng)])


def _naive_grow(priority, shape, n):
    h, w = shape
    rank = np.empty(h * w, dtype=np.int64)
    rank[priority] = np.arange(h * w)
    rank_l, order_l, queued = rank.tolist(), priority.tolist(), bytearray(h * w)
    heap, out = [0], []
    queued[order_l[0]] = 1
    for _ in range(min(n, h * w)):
        p = order_l[heapq.heappop(heap)]
        out.append(p)
        y, x = divmod(p, w)
        for q, inside in ((p - 1, x > 0), (p + 1, x < w - 1), (p - w, y > 0), (p + w, y < h - 1)):
            if inside and not queued[q]:
                queued[q] = 1
                heapq.heappush(heap, rank_l[q])
    return np.asarray(out, dtype=np.int64)


def naive_order(importance, method, n, rng):
    """The first ``n`` pixels by the straightforward algorithms (same result as the suite's)."""
    priority = _naive_priority(importance, method, rng)
    return priority[:n] if method == "rank" else _naive_grow(priority, importance.shape, n)


def naive_noise(src, rng):
    """Phase-scrambled noise the straightforward way (same result as the suite's to ~1e-12)."""
    img = np.asarray(src, dtype=np.float64)
    amp = np.abs(np.fft.rfft2(np.moveaxis(img, -1, 0)))
    phase = np.angle(np.fft.rfft2(rng.standard_normal(img.shape[:2])))
    phase[0, 0] = 0.0
    noise = np.moveaxis(np.fft.irfft2(amp * np.exp(1j * phase)[None], s=img.shape[:2]), 0, -1)
    noise = (noise - noise.mean((0, 1))) * (img.std((0, 1)) / noise.std((0, 1))) + img.mean((0, 1))
    return np.clip(np.rint(noise), 0, 255).astype(np.uint8)


def reference_stimulus(item: BuildItem, src: np.ndarray, imp: np.ndarray, config: BuildConfig,
                       n: int, suite_primitives: bool) -> np.ndarray:
    """One stimulus computed on its own: its own pixel order (full sort or growth) and its own
    FFT."""
    order_ss, noise_ss = np.random.SeedSequence(image_seed(config.seed, item.image_id)).spawn(2)
    if suite_primitives:
        order = nested_pixel_order(imp, config.order, n, np.random.default_rng(order_ss))
        noise, _ = noise_background(src, np.random.default_rng(noise_ss))
    else:
        order = naive_order(imp, config.order, n, np.random.default_rng(order_ss))
        noise = naive_noise(src, np.random.default_rng(noise_ss))
    ys, xs = np.divmod(order[:n], config.size)
    dy, dx, _, _ = centering_shift(ys, xs, (config.size, config.size))
    stim = noise.copy()
    stim[ys + dy, xs + dx] = src[ys, xs]
    return stim


def run_reference(items, config, out: Path, suite_primitives: bool) -> tuple[float, int, float]:
    """Reference build on one core; returns (s, stimuli, encode s).

    Straightforward primitives and Pillow's default PNG, or the suite's primitives and encoder.
    """
    counts = level_counts(config.levels_percent, config.budget)
    start, n_stim, enc = time.perf_counter(), 0, 0.0
    label = "suite primitives + PNG encoder" if suite_primitives else "straightforward"
    for item in tqdm(items, desc=f"reference ({label})", unit="img"):
        src, imp = load_item(item, config.size)  # loaded once per image, as anyone would
        for level, n in enumerate(counts):
            stim = reference_stimulus(item, src, imp, config, int(n), suite_primitives)
            t0 = time.perf_counter()
            if suite_primitives:
                data = encode_png(stim, config.png_compress_level)
            else:
                buf = io.BytesIO()
                Image.fromarray(stim).save(buf, format="PNG")
                data = buf.getvalue()
            enc += time.perf_counter() - t0
            (out / f"{item.image_id}_L{level:02d}.png").write_bytes(data)
            n_stim += 1
    return time.perf_counter() - start, n_stim, enc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--reference-images", type=int, default=40,
                        help="images the (slow) reference is timed on")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = BuildConfig(full=False,
                         maps_note="SYNTHETIC benchmark maps (Gaussian blobs), not human maps")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        items = synthetic_items(tmp, args.images)
        stats: dict = {}
        t0 = time.perf_counter()
        out = build_stimulus_set(items, tmp / "suite", config, workers=args.workers, stats=stats)
        suite_s = time.perf_counter() - t0
        n_suite = stats["n_stimuli"]
        ref_items = items[:args.reference_images]
        (tmp / "ref").mkdir()
        ref_s, n_ref, ref_enc = run_reference(ref_items, config, tmp / "ref", False)
        (tmp / "ref1").mkdir()
        ref1_s, n_ref1, _ = run_reference(ref_items, config, tmp / "ref1", True)
        rows = read_stimulus_manifest(out)
        same = all(np.array_equal(np.asarray(Image.open(out / r["file"])),
                                  np.asarray(Image.open(tmp / ref / Path(r["file"]).name)))
                   for r in rows if r["image_id"] in {it.image_id for it in ref_items[:5]}
                   for ref in ("ref", "ref1"))
    suite_rate, ref_rate, ref1_rate = n_suite / suite_s, n_ref / ref_s, n_ref1 / ref1_s
    ratio = suite_rate / ref_rate
    encode_share = stats["encode_s"] / stats["work_s"]
    non_encode_per_encode = (stats["work_s"] - stats["encode_s"]) / stats["encode_s"]
    print(f"suite: {n_suite} stimuli in {suite_s:.1f} s on {stats['workers']} workers "
          f"= {suite_rate:.1f} stimuli/s (order {config.order}, budget {config.budget}, "
          f"PNG compress_level {config.png_compress_level})")
    print(f"suite worker time: {stats['work_s']:.1f} s, "
          f"of which PNG encoding {stats['encode_s']:.1f} s "
          f"({100 * encode_share:.0f} %); non-encoding / encoding = {non_encode_per_encode:.2f}")
    print(f"reference (straightforward): {n_ref} stimuli ({len(ref_items)} images) "
          f"in {ref_s:.1f} s on 1 core = {ref_rate:.2f} stimuli/s "
          f"(PNG encoding {100 * ref_enc / ref_s:.0f} % of it)")
    print(f"reference structure on the suite's primitives and PNG encoder: {n_ref1} stimuli in "
          f"{ref1_s:.1f} s = {ref1_rate:.2f} stimuli/s "
          f"(suite / this = {suite_rate / ref1_rate:.1f}x: "
          f"reuse across levels and {stats['workers']} workers alone)")
    print(f"same pixels as both references on a 5-image sample: {'yes' if same else 'NO'}")
    met = ratio >= 5 and non_encode_per_encode <= 1 and same
    print(f"BENCH stimuli suite_stimuli_per_s={suite_rate:.1f} "
          f"reference_stimuli_per_s={ref_rate:.2f} "
          f"ratio={ratio:.1f} ratio_same_primitives={suite_rate / ref1_rate:.1f} "
          f"encode_share={encode_share:.2f} "
          f"non_encoding_over_encoding={non_encode_per_encode:.2f} "
          f"target={'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
