"""The ClickMe map preparation follows paradigm §3: kernel, padding, sizes."""

import numpy as np
import torch
from scipy.signal import correlate2d

from models.human_maps import blur, blur_kernel, prepare_human_maps


def test_kernel_taps_sigma_and_normalization():
    k = blur_kernel()
    assert k.shape == (10, 10)
    assert np.isclose(k.sum(), 1.0, atol=1e-6)
    offsets = np.arange(-5, 5)
    g = np.exp(-(offsets**2) / 200.0)
    # the authors' kernel: columns at offsets −5…4, rows at 4…−5 (their meshgrid's y axis)
    expected = np.outer(g[::-1], g) / np.outer(g, g).sum()
    np.testing.assert_allclose(k, expected, rtol=1e-6)
    # asymmetric taps: the peak (offset 0) sits at row 4, column 5, not in the middle of 10
    assert np.unravel_index(k.argmax(), k.shape) == (4, 5)


def test_blur_is_cross_correlation_with_tf_same_padding():
    rng = np.random.default_rng(0)
    x = rng.random((64, 64)).astype(np.float32)
    ours = blur(torch.from_numpy(x)[None, None])[0, 0].numpy()
    padded = np.pad(x, ((4, 5), (4, 5)))  # TensorFlow "same": 4 before, 5 after
    ref = correlate2d(padded, blur_kernel(), mode="valid")
    assert ours.shape == (64, 64)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_impulse_response_is_the_flipped_kernel_placed_by_the_padding():
    x = np.zeros((32, 32), np.float32)
    x[16, 16] = 1.0
    out = blur(torch.from_numpy(x)[None, None])[0, 0].numpy()
    k = blur_kernel()
    # cross-correlation: out[16 - i + 4, 16 - j + 4] = k[i, j]
    np.testing.assert_allclose(out[11:21, 11:21], k[::-1, ::-1], rtol=1e-6)


def test_prepare_maps_shapes_and_mass():
    maps = np.zeros((2, 256, 256), np.float32)
    maps[0, 100:140, 100:140] = 255
    out = prepare_human_maps(maps)
    assert out.shape == (2, 1, 224, 224)
    assert out[1].abs().max() == 0
    assert out[0].max() > 0
    # blurring spreads the block: more pixels nonzero than the block covers at 224
    assert (out[0] > 1e-3).sum() > (40 * 224 / 256) ** 2
