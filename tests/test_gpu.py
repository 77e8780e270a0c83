"""The GPU paths on a CUDA device: every test here is marked ``gpu`` and is skipped, saying
so, where torch sees none (tests/conftest.py).

The CPU tests cover the same code; here the device is the difference: a model built on the
GPU gives the CPU's answers, bf16 autocast on the GPU stays close to fp32, and the
harmonizer's fine-tuning loop trains on the GPU it finds, under bf16 autocast where the GPU
has it.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from models.harmonizer import training as hm
from models.human_maps import prepare_human_maps
from models.observe import check_precision, model_logits
from models.zoo import create
from suite.errors import InputError

pytestmark = pytest.mark.gpu
DEVICE = "cuda"


@pytest.fixture(scope="module")
def photos(imagenet_sample):
    """Three animal and three non-animal ImageNet photos (the first of each in the manifest)."""
    with open(imagenet_sample / "manifest.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = [r for r in rows if r["category"] == "animal"][:3] + \
             [r for r in rows if r["category"] == "non-animal"][:3]
    return [imagenet_sample / r["file"] for r in picked]


@pytest.fixture(scope="module")
def lite0_on_device():
    return create("efficientnet_lite0_imagenet", device=DEVICE)


def test_a_model_on_the_gpu_gives_the_cpus_logits(lite0, lite0_on_device, photos):
    assert next(lite0_on_device.module.parameters()).device.type == torch.device(DEVICE).type
    cpu = model_logits(lite0, photos, progress=False)
    gpu = model_logits(lite0_on_device, photos, progress=False)
    assert gpu.shape == (6, 1000) and gpu.device.type == "cpu" and gpu.dtype == torch.float32
    # cuDNN may run convolutions in TF32: close to the CPU's fp32, not bit-equal
    assert (cpu - gpu).abs().max() < 0.02 * cpu.abs().max()
    assert torch.equal(cpu.argmax(1), gpu.argmax(1))  # clear photographs: no near ties


def test_bf16_on_the_gpu_is_close_to_fp32(lite0_on_device, photos):
    if not torch.cuda.is_bf16_supported():  # refused by name rather than emulated
        with pytest.raises(InputError, match="no native bfloat16"):
            check_precision("bf16", DEVICE)
        return
    assert check_precision("bf16", DEVICE) == "bf16"
    fp32 = model_logits(lite0_on_device, photos, progress=False)
    bf16 = model_logits(lite0_on_device, photos, progress=False, precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)  # it really ran in bf16
    assert (fp32 - bf16).abs().max() < 0.1 * fp32.abs().max()
    assert torch.equal(fp32.argmax(1), bf16.argmax(1))


class _Items(torch.utils.data.Dataset):
    """(image, map, label, token) with the label in the image: is the red channel brighter?"""

    def __init__(self, n: int, token: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 16, 16, generator=g)
        self.x[: n // 2, 0] *= 0.5
        self.y = (self.x[:, 0].mean((1, 2)) > self.x[:, 1].mean((1, 2))).long()
        self.m = prepare_human_maps(np.ones((n, 16, 16), np.float32), 16)
        self.token = token

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        m = self.m[i] if self.token else torch.zeros_like(self.m[i])
        return self.x[i], m, int(self.y[i]), float(self.token)


def test_fine_tuning_trains_on_the_gpu(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2))
    cfg = hm.HarmonizeConfig(steps=20, batch_size=16, lr=0.05, warmup_steps=2, workers=0,
                             eval_every=10**6, checkpoint_every=10**6)
    last = hm.fine_tune(model, (0.5,) * 3, (0.25,) * 3, _Items(64, 1, 1), _Items(256, 0, 2),
                        cfg, tmp_path / "run", log=lambda s: None)
    device = next(model.parameters()).device
    assert device.type == torch.device(DEVICE).type  # trained in place, on the device found
    expected = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) \
        if device.type == "cuda" else None
    assert hm.amp_dtype(cfg, device) == expected
    rows = [json.loads(line) for line in (tmp_path / "run" / hm.METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21)) and rows[-1] == last
    assert all(np.isfinite([r["loss"], r["task_loss"], r["harmonization_loss"]]).all()
               for r in rows)
    assert last["maps_in_batch"] == round(0.2 * 16)
    assert (tmp_path / "run" / hm.CHECKPOINT).is_file()
