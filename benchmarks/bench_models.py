"""Model observers, side by side in one run: decoding once, hiding preprocessing, GPU images/s.

(a) decode once: the three EfficientNet-Lites over one stimulus set as ``models sweep`` runs
    them (the set verified and decoded once into a memory-mapped uint8 array, each model
    reading its pixels from it) against three separate ``models observe`` runs (each
    verifying, decoding and resizing every PNG again). Both include building the models.
    Target: ≥ 1.5× faster.
(b) preprocessing hidden: stimuli/s of the sweep's per-model path (memory-mapped pixels →
    resize + normalize, prepared in a thread while the network runs the previous batch)
    against the network alone on ready tensors, same model (efficientnet_lite0), same batch
    size, same run. Target: ≥ 0.85. observe's path (PNG decode per batch) is shown too.
(c) with CUDA: ViT-B/16 and ResNet-50 images/s in fp32 and bf16 (random weights: speed only).

Stimuli: 256×256 PNGs made from the 80 real photographs of ../shared/data/imagenet-sample
(crops, shifts, flips), written as a stimulus set with sha256s.
"""

from __future__ import annotations

import csv
import hashlib
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.observe import array_logits, default_batch_size, model_logits, observe  # noqa: E402
from models.preprocessing import to_model_input, whole_image  # noqa: E402
from models.stimulus_cache import decoded_set  # noqa: E402
from models.sweep import SweepOptions, sweep  # noqa: E402
from models.zoo import create  # noqa: E402
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS  # noqa: E402
from tests.support.data import IMAGENET_SAMPLE as SAMPLE  # noqa: E402

N_STIMULI = 240
LITES = [
    "efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet", "efficientnet_lite2_imagenet",
]
DECODE_TARGET = 1.5
HIDDEN_TARGET = 0.85


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_set(folder: Path, n: int) -> Path:
    """A stimulus set of n distinct 256×256 PNGs (each real photo cropped, shifted, flipped)."""
    folder.mkdir(parents=True)
    files = [r["file"] for r in csv.DictReader(open(SAMPLE / "manifest.csv", encoding="utf-8"))]
    cats = {r["file"]: r["category"] for r in csv.DictReader(open(SAMPLE / "manifest.csv",
                                                                 encoding="utf-8"))}
    rows = []
    for i in range(n):
        src = files[i % len(files)]
        im = Image.open(SAMPLE / src).convert("RGB")
        s = 288 / min(im.size)
        im = im.resize((max(288, round(im.width * s)), max(288, round(im.height * s))),
                       Image.BICUBIC)
        off = 8 * (i // len(files))
        im = im.crop((off, off, off + 256, off + 256))
        if (i // len(files)) % 2:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        name = f"s{i:04d}.png"
        im.save(folder / name)
        rows.append({"stimulus_id": f"s{i:04d}", "file": name, "image_id": f"s{i:04d}",
                     "category": cats[src], "class_index": "", "level_index": "0",
                     "level_percent": "", "n_revealed": "", "budget": "", "centroid_dx": "0",
                     "centroid_dy": "0", "seed": "0",
                     "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()})
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, STIMULUS_MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder


def decode_once(set_dir: Path, tmp: Path) -> tuple[float, float, bool]:
    """(seconds of 3 observe runs, seconds of one 3-model sweep, same decisions?)."""
    t = time.perf_counter()
    separate = [observe(name, set_dir, progress=False) for name in LITES]
    t_observe = time.perf_counter() - t
    out = tmp / f"sweep-{time.monotonic_ns()}"
    t = time.perf_counter()
    result = sweep(LITES, SweepOptions(stimuli=set_dir, out=out, cache_dir=out / "cache",
                                       progress=False, log=lambda *_: None))
    t_sweep = time.perf_counter() - t
    swept = list(csv.DictReader(open(result["trials"], encoding="utf-8")))
    flat = [r for rows in separate for r in rows]
    same = [r["response"] for r in swept] == [r["response"] for r in flat]
    return t_observe, t_sweep, same


def hidden(set_dir: Path, tmp: Path) -> dict[str, float]:
    """stimuli/s: network alone on ready tensors, the sweep's path, observe's path."""
    from models.observe import read_stimulus_set

    model = create("efficientnet_lite0_imagenet")
    stimuli = read_stimulus_set(set_dir)
    images, _, _ = decoded_set(stimuli, tmp / "cache-hidden", progress=False)
    bs = default_batch_size("cpu")
    prep = whole_image(model.preprocessing)
    ready = [to_model_input(np.array(images[i:i + bs]), prep) for i in range(0, len(images), bs)]
    paths = [s["path"] for s in stimuli]

    def network():
        with torch.inference_mode():
            for x in ready:
                model.module(x)

    runs = {"network": network,
            "sweep": lambda: array_logits(model, images, bs, progress=False),
            "observe": lambda: model_logits(model, paths, bs, progress=False)}
    network()                                    # warm-up
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(3):                           # interleaved rounds: load hits all alike
        for label, fn in runs.items():
            t = time.perf_counter()
            fn()
            rates[label].append(len(images) / (time.perf_counter() - t))
    return {k: max(v) for k, v in rates.items()}


def gpu_figures() -> list[str]:
    if not torch.cuda.is_available():
        print("(c) no GPU: ViT-B/16 and ResNet-50 images/s not measured (CUDA unavailable)")
        return []
    figures = []
    for name in ("vit_base_patch16_224", "resnet50"):
        m = create(name, weights="random", device="cuda")
        x = torch.randn(256, 3, 224, 224, device="cuda").contiguous(
            memory_format=torch.channels_last)
        for precision in ("fp32", "bf16"):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                        enabled=precision == "bf16"):
                for _ in range(3):
                    m.module(x)
                torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(10):
                    m.module(x)
                torch.cuda.synchronize()
            rate = 2560 / (time.perf_counter() - t)
            print(f"(c) {name} {precision} on {torch.cuda.get_device_name()}: {rate:.0f} images/s")
            figures.append(f"{name.split('_')[0]}_{precision}_img_s={rate:.0f}")
        del m
        torch.cuda.empty_cache()
    return figures


def main() -> int:
    print(f"CPU: {cpu_model()}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        set_dir = make_set(tmp / "set", N_STIMULI)
        t_obs, t_sw, same = decode_once(set_dir, tmp)
        decode_ratio = t_obs / t_sw
        print(f"(a) {N_STIMULI} stimuli × 3 EfficientNet-Lites: 3 observe runs {t_obs:.1f} s, "
              f"one sweep {t_sw:.1f} s (decode included) → {decode_ratio:.2f}× "
              f"(target ≥ {DECODE_TARGET}); decisions identical: {same}")
        rates = hidden(set_dir, tmp)
    hidden_ratio = rates["sweep"] / rates["network"]
    print(f"(b) efficientnet_lite0 fp32, batch {default_batch_size('cpu')}: network alone "
          f"{rates['network']:.1f} stimuli/s, sweep path {rates['sweep']:.1f} "
          f"({hidden_ratio:.2f}×, target ≥ {HIDDEN_TARGET}), observe path (PNG decode) "
          f"{rates['observe']:.1f} ({rates['observe'] / rates['network']:.2f}×); best of 3 rounds")
    extra = gpu_figures()
    met = decode_ratio >= DECODE_TARGET and hidden_ratio >= HIDDEN_TARGET and same
    line = (f"BENCH models decode_once_ratio={decode_ratio:.2f} hidden_ratio={hidden_ratio:.2f} "
            f"network_stim_s={rates['network']:.1f} sweep_stim_s={rates['sweep']:.1f} "
            f"observe_stim_s={rates['observe']:.1f} observe3_s={t_obs:.1f} sweep3_s={t_sw:.1f} "
            f"{' '.join(extra)} target={'met' if met else 'missed'}")
    print(" ".join(line.split()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
