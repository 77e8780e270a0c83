"""How an image becomes a model's input: the configuration (data) and the batched tensor transform.

Two framings exist. A model's own *evaluation* transform (timm's: shorter side to
``resize``, center crop to ``input_size``) is what ImageNet top-1 is measured with. A
*stimulus* is shown whole to people, so by default observers see it whole too: the full
256×256 canvas is resized to ``input_size`` without cropping (as the authors' ClickMe
loader does, paradigm §3), so no revealed pixel near the border is cut away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from suite.errors import InputError

CROPS = ("center", "none")
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocessing:
    """A model's input configuration; travels with the model."""

    input_size: int = 224
    resize: int = 256           # shorter side resized to this before the crop
    crop: str = "center"        # "center" or "none" ("none": whole image resized to input_size²)
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self):
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, "
                             f"got {self.interpolation!r}")
        if self.crop == "center" and self.resize < self.input_size:
            raise ValueError(f"resize {self.resize} is smaller than the crop {self.input_size}")


def from_timm_config(config: dict) -> Preprocessing:
    """Preprocessing from timm's resolved data config (input_size, crop_pct, interpolation, mean,
    std)."""
    size = int(config["input_size"][-1])
    crop_pct = float(config.get("crop_pct") or 1.0)
    interpolation = config.get("interpolation", "bilinear")
    if interpolation not in INTERPOLATIONS:
        interpolation = "bilinear"  # timm's "random"/"nearest" are training-time choices
    return Preprocessing(
        input_size=size,
        resize=math.floor(size / crop_pct),  # timm's own rule for the eval resize
        crop="center",
        interpolation=interpolation,
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
    )


def whole_image(prep: Preprocessing) -> Preprocessing:
    """The same model configuration framed for stimuli: the whole image resized to input_size²."""
    return replace(prep, resize=prep.input_size, crop="none")


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image not found; check the path "
                         "(relative paths are read from the manifest's folder)")
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot decode as an image ({err}); "
                         "replace or remove the file") from err


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    # antialias matches Pillow's downsampling (timm's eval transform resizes with Pillow)
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)


def _frame(x: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """(N, 3, H, W) float images of one size → (N, 3, input_size, input_size), still in [0, 1]
    scale."""
    h, w = x.shape[-2:]
    if prep.crop == "none":
        return _resize(x, (prep.input_size, prep.input_size), prep.interpolation)
    # sizes and offsets rounded exactly as torchvision's Resize and CenterCrop
    # (timm's eval transform)
    short, long = (h, w) if h <= w else (w, h)
    long = int(prep.resize * long / short)
    x = _resize(x, (prep.resize, long) if h <= w else (long, prep.resize), prep.interpolation)
    top = int(round((x.shape[-2] - prep.input_size) / 2.0))
    left = int(round((x.shape[-1] - prep.input_size) / 2.0))
    return x[..., top:top + prep.input_size, left:left + prep.input_size]


def to_model_input(images: Sequence[np.ndarray] | np.ndarray, prep: Preprocessing,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 images → normalized (N, 3, S, S) float32 batch, channels-last, on
    ``device``."""
    device = torch.device(device)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        groups = [images]
    else:
        groups = [im[None] for im in images]
        if groups and all(g.shape == groups[0].shape for g in groups):
            groups = [np.concatenate(groups)]  # one size: one vectorized resize for the batch
    mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)
    out = []
    for g in groups:
        x = (torch.from_numpy(np.ascontiguousarray(g)).to(device)
             .permute(0, 3, 1, 2).float().div_(255.0))
        x = _frame(x, prep).clamp_(0.0, 1.0)  # bicubic overshoot stays inside the pixel range
        out.append((x - mean) / std)
    batch = torch.cat(out) if len(out) > 1 else out[0]
    return batch.contiguous(memory_format=torch.channels_last)
