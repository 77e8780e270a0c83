"""Phase-scrambled noise: each channel's Fourier amplitude kept, one random phase shared by all channels."""

from __future__ import annotations

import numpy as np


def amplitude_spectrum(image: np.ndarray) -> np.ndarray:
    """Per-channel Fourier amplitude of an (H, W, C) image: (C, H, W//2+1) float64 (real FFT half-plane)."""
    channels = np.moveaxis(np.asarray(image, dtype=np.float64), -1, 0)
    return np.abs(np.fft.rfft2(channels))


def random_phase(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A Hermitian-symmetric random phase field for an (H, W) real image: (H, W//2+1) float64 radians.

    Taken from the FFT of real white noise, so the inverse FFT of any amplitude with this
    phase is real. The DC phase is zeroed so the noise keeps the source mean exactly.
    """
    phase = np.angle(np.fft.rfft2(rng.standard_normal(shape)))
    phase[0, 0] = 0.0
    return phase


def phase_scramble(amplitude: np.ndarray, shape: tuple[int, int], rng: np.random.Generator,
                   mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
    """Real noise with the given amplitude (C, H, W//2+1) and one shared random phase: (H, W, C) float64, unclipped.

    ``mean``/``std`` (per channel) rescale the result; without them the amplitude alone sets
    them, which for a source's own amplitude are already the source's mean and std (Parseval).
    """
    phase = random_phase(shape, rng)
    noise = np.fft.irfft2(amplitude * np.exp(1j * phase)[None], s=shape)
    if mean is not None and std is not None:
        cur_mean = noise.mean(axis=(1, 2), keepdims=True)
        cur_std = noise.std(axis=(1, 2), keepdims=True)
        scale = np.where(cur_std > 0, np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
                         / np.where(cur_std > 0, cur_std, 1.0), 0.0)
        noise = (noise - cur_mean) * scale + np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
    return np.moveaxis(noise, 0, -1)


def noise_background(image: np.ndarray, rng: np.random.Generator,
                     amplitude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Noise matched to ``image`` (H, W, 3): returns (uint8 clipped to [0, 255], float64 unclipped).

    ``amplitude`` replaces the image's own spectrum (the set-average option); mean and std
    still come from the image.
    """
    src = np.asarray(image, dtype=np.float64)
    amp = amplitude_spectrum(src) if amplitude is None else amplitude
    noise = phase_scramble(amp, src.shape[:2], rng, src.mean(axis=(0, 1)), src.std(axis=(0, 1)))
    return np.clip(np.rint(noise), 0, 255).astype(np.uint8), noise
