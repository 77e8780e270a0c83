"""Harmonizer fine-tuning on a GPU: images/s and the loss curve over a few hundred AMP steps.

Fine-tunes the zoo's efficientnet_lite0_imagenet (real ImageNet weights, offline) with the
harmonizer loss through models.harmonizer.training.fine_tune, at 224 px, bf16 autocast, batch 64,
0.2 : 0.8 mapped : plain images. The images are synthetic (no ClickMe shards on the
machine): smooth random textures with a bright blob, the blob marked by a ClickMe-prepared
map, labels drawn from 10 ImageNet classes. Speed is what it measures; the loss curve only
shows that training is stable (finite, falling task loss). Without CUDA it says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.harmonizer.training import HarmonizeConfig, fine_tune  # noqa: E402
from models.human_maps import prepare_human_maps  # noqa: E402
from models.zoo import create  # noqa: E402

TARGET_IMAGES_PER_S = 300.0  # the double backward costs ~3 plain training steps


class Synthetic(torch.utils.data.Dataset):
    """(image (3,224,224) in [0,1], map (1,224,224), label, token) made from the index."""

    def __init__(self, n: int, token: float, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.tex = F.interpolate(torch.rand(n, 3, 14, 14, generator=g), size=224, mode="bilinear")
        self.centers = torch.randint(40, 184, (n, 2), generator=g)
        self.labels = torch.randint(0, 10, (n,), generator=g) * 37  # 10 spread ImageNet classes
        self.token = token

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        yy, xx = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
        cy, cx = self.centers[i].tolist()
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 20.0**2))
        image = (0.7 * self.tex[i] + 0.3 * blob).clamp(0, 1)
        heat = prepare_human_maps(blob.numpy() * self.token, 224)[0] if self.token else \
            torch.zeros(1, 224, 224)
        return image, heat, int(self.labels[i]), self.token


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--model", default="efficientnet_lite0_imagenet")
    p.add_argument("--amp", default="bf16", choices=("bf16", "fp16", "none"))
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no GPU: CUDA is not available on this machine, so the harmonizer GPU benchmark "
              "did not run (the CPU tests cover correctness)")
        print("BENCH gpu_harmonize gpu=none images_per_s=nan target=missed")
        return 0
    torch.backends.cudnn.benchmark = True
    zm = create(args.model)
    cfg = HarmonizeConfig(steps=args.steps, batch_size=args.batch_size, lr=0.01, warmup_steps=30,
                          amp=args.amp, eval_every=10**9, checkpoint_every=10**9, workers=6)
    with tempfile.TemporaryDirectory() as out:
        fine_tune(zm.module, zm.preprocessing.mean, zm.preprocessing.std,
                  Synthetic(2048, 1.0, 0), Synthetic(8192, 0.0, 1), cfg, out, log=print)
        rows = [json.loads(r) for r in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    for r in rows[:: max(1, len(rows) // 12)] + rows[-1:]:
        print(f"step {r['step']:4d}  loss {r['loss']:.4f}  task {r['task_loss']:.4f}  "
              f"harmonization {r['harmonization_loss']:.5f}  {r['images_per_s']:.0f} img/s")
    speed = statistics.median(r["images_per_s"] for r in rows[20:])  # after cudnn autotuning
    task = [r["task_loss"] for r in rows]
    finite = all(np.isfinite(r["loss"]) for r in rows)
    falling = np.mean(task[-20:]) < np.mean(task[:20])
    met = finite and falling and speed >= TARGET_IMAGES_PER_S
    print(f"BENCH gpu_harmonize gpu={torch.cuda.get_device_name(0).replace(' ', '_')} "
          f"model={args.model} amp={args.amp} batch={args.batch_size} steps={args.steps} "
          f"images_per_s={speed:.0f} task_loss_first20={np.mean(task[:20]):.3f} "
          f"task_loss_last20={np.mean(task[-20:]):.3f} target={'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
