"""Human importance maps prepared as the authors' ClickMe loader does (paradigm §3).

Heatmap 256×256 → 64×64 (bilinear) → 10×10 Gaussian blur (σ = 10, taps at offsets
−5…4 along columns and 4…−5 along rows as in the authors' kernel, normalized to sum 1, zero
"same" padding as TensorFlow pads) → 224×224 (bilinear).
The same blurred maps serve harmonizer training and "where" evaluation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BLUR_SIZE = 10
BLUR_SIGMA = 10.0
MAP_LOW_RES = 64
MODEL_RES = 224


def blur_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """(size, size) float32 Gaussian summing to 1, oriented as the authors' ``gaussian_kernel``.

    Their meshgrid runs x (columns) over offsets −size/2 … size/2 − 1 but y (rows) the other
    way, size/2 − 1 … −size/2: for 10 taps the peak is at row 4, column 5, not (5, 5).
    tests/test_harmonization_parity.py checks it against their code.
    """
    offsets = np.arange(-(size // 2), size - size // 2, dtype=np.float64)
    g = np.exp(-(offsets**2) / (2.0 * sigma**2))
    k = np.outer(g[::-1], g)
    return (k / k.sum()).astype(np.float32)


def _tf_same_pad(size: int) -> tuple[int, int]:
    # TensorFlow's "same" padding for stride 1 puts the odd leftover after: (4, 5) for 10 taps.
    total = size - 1
    return total // 2, total - total // 2


def blur(maps: torch.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Blur (N, 1, H, W) maps with the ClickMe kernel, zero "same" padding (cross-correlation)."""
    if maps.ndim != 4 or maps.shape[1] != 1:
        raise ValueError(f"expected maps of shape (N, 1, H, W), got {tuple(maps.shape)}")
    k = torch.from_numpy(blur_kernel(size, sigma)).to(maps.device, maps.dtype)[None, None]
    before, after = _tf_same_pad(size)
    padded = F.pad(maps, (before, after, before, after))
    return F.conv2d(padded, k)


def prepare_human_maps(heatmaps: np.ndarray | torch.Tensor,
                       out_size: int = MODEL_RES) -> torch.Tensor:
    """ClickMe heatmaps (N, H, W) or (H, W), any scale → blurred
    (N, 1, out_size, out_size) float32."""
    t = torch.as_tensor(np.asarray(heatmaps, dtype=np.float32))
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"expected heatmaps of shape (N, H, W) or (H, W), got {tuple(t.shape)}")
    t = t[:, None]
    low = F.interpolate(t, size=(MAP_LOW_RES, MAP_LOW_RES), mode="bilinear", align_corners=False)
    return F.interpolate(blur(low), size=(out_size, out_size), mode="bilinear", align_corners=False)
