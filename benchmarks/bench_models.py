"""Stimuli per second through efficientnet-lite0 on the CPU: the suite's observer vs a naive loop.

Naive: one image at a time, autograd on, Pillow preprocessing per image (timm's eval
transform), softmax and the top-1 rule per image. Suite: models.observe.model_logits
(batched, inference_mode, channels-last, decoding the next batch while one runs) plus the
rule. Both read the same 256×256 PNG stimuli made from the real ImageNet sample photos.
With CUDA, also images/s for ViT-B/16 and ResNet-50 in bf16 (untrained weights: speed only).
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.decision import decide  # noqa: E402
from models.observe import cpu_has_native_bf16, model_logits  # noqa: E402
from models.zoo import create  # noqa: E402
from tests.support.data import IMAGENET_SAMPLE as SAMPLE  # noqa: E402

N_STIMULI = 240
TARGET = 3.0


def make_stimuli(folder: Path, n: int) -> list[Path]:
    """n distinct 256×256 PNGs: each real photo center-cropped, flipped and shifted."""
    files = [r["file"] for r in csv.DictReader(open(SAMPLE / "manifest.csv", encoding="utf-8"))]
    paths = []
    for i in range(n):
        im = Image.open(SAMPLE / files[i % len(files)]).convert("RGB")
        s = 288 / min(im.size)
        im = im.resize((max(288, round(im.width * s)), max(288, round(im.height * s))), Image.BICUBIC)
        off = 8 * (i // len(files))
        im = im.crop((off, off, off + 256, off + 256))
        if (i // len(files)) % 2:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        paths.append(folder / f"s{i:04d}.png")
        im.save(paths[-1])
    return paths


def naive(model, paths: list[Path]) -> list[bool]:
    import timm.data

    p = model.preprocessing
    transform = timm.data.create_transform(input_size=p.input_size, interpolation=p.interpolation,
                                           mean=p.mean, std=p.std, crop_pct=1.0)
    module = model.module.to(memory_format=torch.contiguous_format)
    out = []
    for path in paths:
        x = transform(Image.open(path).convert("RGB"))[None]
        logits = module(x)  # autograd on, as a first script would run it
        out.append(int(torch.softmax(logits, 1).argmax()) <= 397)
    return out


def suite(model, paths: list[Path], precision: str = "fp32") -> list[bool]:
    model.module.to(memory_format=torch.channels_last)
    return decide(model_logits(model, paths, progress=False,
                               precision=precision)).animal.tolist()


def suite_bf16(model, paths: list[Path]) -> list[bool]:
    return suite(model, paths, "bf16")


def gpu_figures() -> list[str]:
    if not torch.cuda.is_available():
        print("no CUDA device: ViT-B/16 and ResNet-50 bf16 figures not measured")
        return []
    figures = []
    for name in ("vit_base_patch16_224", "resnet50"):
        m = create(name, weights="random", device="cuda")
        x = torch.randn(256, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(3):
                m.module(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(10):
                m.module(x)
            torch.cuda.synchronize()
        rate = 2560 / (time.perf_counter() - t)
        print(f"{name} bf16 on {torch.cuda.get_device_name()}: {rate:.0f} images/s")
        figures.append(f"{name.split('_')[0]}_bf16_img_s={rate:.0f}")
    return figures


def main() -> int:
    torch.manual_seed(0)
    model = create("efficientnet_lite0_imagenet")
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_stimuli(Path(tmp), N_STIMULI)
        suite(model, paths[:16])  # warm-up both paths once
        naive(model, paths[:4])
        rates = {}
        answers = {}
        paths_run = [("naive", naive), ("suite", suite)]
        if cpu_has_native_bf16():
            paths_run.append(("suite_bf16", suite_bf16))
        else:
            print("this CPU has no native bf16: the suite refuses --precision bf16 here "
                  "(emulated, ~16x slower); bf16 not measured")
        # interleave rounds so load from other processes hits both paths alike
        for _ in range(2):
            for label, fn in paths_run:
                t = time.perf_counter()
                answers[label] = fn(model, paths)
                rates.setdefault(label, []).append(len(paths) / (time.perf_counter() - t))
    agree = float(np.mean(np.array(answers["naive"]) == np.array(answers["suite"])))
    naive_rate, suite_rate = max(rates["naive"]), max(rates["suite"])
    ratio = suite_rate / naive_rate
    print(f"{N_STIMULI} stimuli, {torch.get_num_threads()} CPU threads; best of 2 rounds")
    print(f"naive loop: {naive_rate:.1f} stimuli/s   suite (fp32, default): {suite_rate:.1f} "
          f"stimuli/s   ratio {ratio:.2f}x   decisions agree with naive on {agree:.1%}")
    bf16 = ""
    if "suite_bf16" in rates:
        agree16 = float(np.mean(np.array(answers["suite"]) == np.array(answers["suite_bf16"])))
        bf16_rate = max(rates["suite_bf16"])
        ratio16 = bf16_rate / naive_rate
        print(f"suite --precision bf16 (opt-in): {bf16_rate:.1f} stimuli/s   ratio {ratio16:.2f}x   "
              f"decisions agree with fp32 on {agree16:.1%}")
        bf16 = f"bf16_stim_s={bf16_rate:.1f} bf16_ratio={ratio16:.2f} bf16_agree={agree16:.3f}"
    extra = gpu_figures()
    # the target is judged on the default (fp32) path; bf16 changes numerics and is opt-in
    line = (f"BENCH models suite_stim_s={suite_rate:.1f} naive_stim_s={naive_rate:.1f} "
            f"ratio={ratio:.2f} {bf16} {' '.join(extra)} "
            f"target={'met' if ratio >= TARGET else 'missed'}")
    print(" ".join(line.split()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
