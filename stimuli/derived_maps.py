"""Importance maps made without people (always labelled NOT HUMAN where they are used).

For trying the suite before human maps exist, and as controls: a multi-scale
centre-surround colour-contrast saliency of the photograph, and a centred Gaussian
(the centre bias every human map shares).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import color

from stimuli.click_maps import FRAME


def contrast_saliency(image: np.ndarray) -> np.ndarray:
    """Centre-surround CIELAB contrast saliency of an (H, W, 3) uint8 image: (H, W) float32,
    0 below the median."""
    lab = color.rgb2lab(image)
    sal = np.zeros(image.shape[:2])
    for sigma in (1.0, 2.0, 4.0):
        centre = ndimage.gaussian_filter(lab, (sigma, sigma, 0))
        surround = ndimage.gaussian_filter(lab, (sigma * 6, sigma * 6, 0))
        sal += np.linalg.norm(centre - surround, axis=-1)
    sal = ndimage.gaussian_filter(sal, 3.0)
    # Zero the least salient half, like a click map with unclicked regions.
    sal = np.maximum(sal - np.median(sal), 0.0)
    return (sal / sal.max()).astype(np.float32)


def centre_map(size: int = FRAME) -> np.ndarray:
    """A centre Gaussian (σ = size/4), 0–1: where people look when nothing else is known."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.exp(-(xx**2 + yy**2) / (2 * (size / 4) ** 2)).astype(np.float32)


