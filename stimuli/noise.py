"""Phase-scrambled noise: each channel's Fourier amplitude kept, one random phase shared by all
channels."""

from __future__ import annotations

import numpy as np
from scipy import fft


def _channels(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> contiguous (C, H, W) float64: per-channel FFTs and statistics run on
    contiguous planes."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(image, dtype=np.float64), -1, 0))


def amplitude_spectrum(image: np.ndarray) -> np.ndarray:
    """Per-channel Fourier amplitude of an (H, W, C) image: (C, H, W//2+1) float64
    (real FFT half-plane)."""
    return np.abs(fft.rfft2(_channels(image)))


def random_phasor(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A Hermitian-symmetric random unit phasor field for an (H, W) real image:
    (H, W//2+1) complex128.

    Taken from the FFT of real white noise (``F / |F|``), so the inverse FFT of any amplitude
    times it is real. The DC term is 1 (phase 0) so the noise keeps the source mean exactly.
    """
    f = fft.rfft2(rng.standard_normal(shape))
    mag = np.abs(f)
    # A coefficient of exactly 0 has no phase; give it phase 0 (probability ~0 for Gaussian noise).
    phasor = np.divide(f, mag, out=np.ones_like(f), where=mag > 0)
    phasor[0, 0] = 1.0
    return phasor


def phase_scramble(amplitude: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
                   mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
    """Real noise with the given amplitude (C, H, W//2+1) and one shared random phase:
    (H, W, C) float64, unclipped.

    ``mean``/``std`` (per channel) rescale the result; without them the amplitude alone sets
    them, which for a source's own amplitude are already the source's mean and std (Parseval).
    """
    return np.moveaxis(_scramble(amplitude, shape, rng, mean, std), 0, -1)


def _scramble(amplitude, shape, rng, mean, std) -> np.ndarray:
    """phase_scramble's work, channels first: (C, H, W) float64."""
    noise = fft.irfft2(amplitude * random_phasor(shape, rng)[None], s=shape)
    if mean is not None and std is not None:
        flat = noise.reshape(noise.shape[0], -1)
        cur_mean = flat.mean(axis=1)
        cur_std = flat.std(axis=1)
        scale = np.where(cur_std > 0, np.asarray(std, dtype=np.float64)
                         / np.where(cur_std > 0, cur_std, 1.0), 0.0)
        noise -= cur_mean[:, None, None]
        noise *= scale[:, None, None]
        noise += np.asarray(mean, dtype=np.float64)[:, None, None]
    return noise


def noise_background(image: np.ndarray, rng: np.random.Generator,
                     amplitude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Noise matched to ``image`` (H, W, 3): returns ((H, W, 3) uint8 clipped to [0, 255],
    (H, W, 3) float64 unclipped).

    ``amplitude`` replaces the image's own spectrum (the set-average option); mean and std
    still come from the image. One forward FFT of the image, one of the phase field, one inverse.
    """
    src = _channels(image)
    amp = np.abs(fft.rfft2(src)) if amplitude is None else amplitude
    flat = src.reshape(src.shape[0], -1)
    noise = _scramble(amp, src.shape[1:], rng, flat.mean(axis=1), flat.std(axis=1))
    clipped = np.clip(np.rint(noise), 0, 255).astype(np.uint8)
    return (np.ascontiguousarray(np.moveaxis(clipped, 0, -1)), np.moveaxis(noise, 0, -1))
