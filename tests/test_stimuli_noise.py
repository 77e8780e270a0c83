"""Phase-scrambled noise on real photos, clamped centering, and byte-identical seeded builds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from stimuli.build import build_stimulus_set
from stimuli.config import BuildConfig
from stimuli.io import BuildItem
from stimuli.manifest import read_stimulus_manifest
from stimuli.masks import centering_shift, nested_pixel_order
from stimuli.noise import amplitude_spectrum
from stimuli.render import load_item, plan_image, render_level
from tests.support.synthetic_maps import make_synthetic_items, save_map


def _amp(x: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.fft2(np.moveaxis(np.asarray(x, dtype=np.float64), -1, 0)))


def test_noise_keeps_each_channels_amplitude_mean_and_std(tmp_path):
    for item in make_synthetic_items(tmp_path, 2, 2):
        plan = plan_image(item, BuildConfig())
        src, noise = plan.source.astype(np.float64), plan.noise_unclipped
        a_src, a_noise = _amp(src), _amp(noise)
        assert np.abs(a_noise - a_src).max() / a_src.max() < 1e-6
        np.testing.assert_allclose(noise.mean((0, 1)), src.mean((0, 1)), rtol=1e-9)
        np.testing.assert_allclose(noise.std((0, 1)), src.std((0, 1)), rtol=1e-9)
        # the noise is not the photo: its phase was replaced
        assert np.corrcoef(noise[..., 0].ravel(), src[..., 0].ravel())[0, 1] < 0.5
        assert plan.noise.dtype == np.uint8
        assert np.array_equal(plan.noise, np.clip(np.rint(noise), 0, 255).astype(np.uint8))


def test_noise_phase_is_shared_by_the_channels_and_differs_from_the_source(tmp_path):
    item = make_synthetic_items(tmp_path, 1, 0)[0]
    plan = plan_image(item, BuildConfig())
    f = np.fft.fft2(np.moveaxis(plan.noise_unclipped, -1, 0))
    strong = (np.abs(f) > 1e-3 * np.abs(f).max()).all(0)
    d01 = np.angle(f[0] * np.conj(f[1]))[strong]
    d02 = np.angle(f[0] * np.conj(f[2]))[strong]
    assert np.abs(d01).max() < 1e-6 and np.abs(d02).max() < 1e-6
    g = np.fft.fft2(plan.source[..., 0].astype(float))
    assert np.abs(np.angle(f[0] * np.conj(g))[strong]).mean() > 1.0


def test_set_average_spectrum_option_uses_the_mean_amplitude(tmp_path):
    items = make_synthetic_items(tmp_path, 2, 1)
    mean_amp = np.mean([amplitude_spectrum(load_item(it, 256)[0]) for it in items], axis=0)
    config = BuildConfig(spectrum="set", levels_percent=(50.0,), full=False)
    out = build_stimulus_set(items, tmp_path / "set", config, workers=1, progress=False)
    from stimuli.noise import noise_background
    plan = plan_image(items[0], config, amplitude=mean_amp)
    _, unclipped = noise_background(plan.source, np.random.default_rng(0), mean_amp)
    # shape of the spectrum is the set mean (up to the per-image std rescale)
    ratio = np.abs(np.fft.rfft2(np.moveaxis(unclipped, -1, 0)))[:, 1:, 1:] / mean_amp[:, 1:, 1:]
    assert np.ptp(ratio[0]) / ratio[0].mean() < 1e-6
    png = np.asarray(Image.open(out / read_stimulus_manifest(out)[0]["file"]))
    mask = render_level(plan, read_stimulus_manifest(out)[0]["n_revealed"])[1]
    assert np.array_equal(png[~mask], plan.noise[~mask])
    assert not np.array_equal(plan.noise, plan_image(items[0], BuildConfig()).noise)


def test_centering_clamps_and_records_the_residual(tmp_path, imagenet_sample):
    # A synthetic L-shaped map along the top and left edges: its bounding box already spans
    # the canvas, so no shift keeps it inside while centering it; the clamp must win.
    image = imagenet_sample / "n01491361_tiger_shark.JPEG"
    w, h = Image.open(image).size
    ell = np.zeros((h, w))
    ell[: h // 6, :] = 1.0
    ell[:, : w // 3] = 1.0
    item = BuildItem(image, save_map(ell, tmp_path / "synthetic_ell.npy"), "ell", "animal")
    n = int((load_item(item, 256)[1] > 0).sum())
    config = BuildConfig(budget=n, order="rank", levels_percent=(100.0,), full=False)
    plan = plan_image(item, config)
    stim, mask, ry, rx = render_level(plan, n)
    ys, xs = np.nonzero(mask)
    assert ys.size == n  # nothing wrapped or fell off the canvas
    assert (ys.mean() - 127.5, xs.mean() - 127.5) == pytest.approx((ry, rx))
    assert ry < -20 and rx < -20  # clamped: the centroid stays up and left of the center
    assert np.array_equal(stim[mask], plan.source[mask])  # the clamp left no room to move
    dy, dx, _, _ = centering_shift(np.array([10, 12]), np.array([20, 30]), (256, 256))
    assert (dy, dx) == (int(np.rint(127.5 - 11)), int(np.rint(127.5 - 25)))


def test_budget_beyond_the_map_support_grows_around_the_important_region(tmp_path):
    item = make_synthetic_items(tmp_path, 1, 0)[0]
    _, imp = load_item(item, 256)
    support = int((imp > 0).sum())
    budget = min(65536, support + 8000)
    for method in ("rank", "grow", "pgrow"):
        order = nested_pixel_order(imp, method, budget, np.random.default_rng(0))
        mask = np.zeros(65536, bool)
        mask[order] = True
        mask = mask.reshape(256, 256)
        assert mask[imp > 0].all()  # every important pixel comes before any fill pixel
        labels, n = ndimage.label(mask)
        assert n == 1  # the fill hugs the important blob instead of scattering


def test_grow_orders_are_connected_at_every_level(tmp_path):
    item = make_synthetic_items(tmp_path, 1, 1)[1]
    _, imp = load_item(item, 256)
    for method in ("grow", "pgrow"):
        order = nested_pixel_order(imp, method, 4000, np.random.default_rng(3))
        for n in (10, 100, 1000, 4000):
            mask = np.zeros(65536, bool)
            mask[order[:n]] = True
            assert ndimage.label(mask.reshape(256, 256))[1] == 1


def test_same_seed_gives_byte_identical_files_and_another_seed_other_noise(tmp_path):
    items = make_synthetic_items(tmp_path, 2, 2)
    config = BuildConfig(levels_percent=(1.0, 10.0, 100.0))
    a = build_stimulus_set(items, tmp_path / "a", config, workers=2, progress=False)
    b = build_stimulus_set(items, tmp_path / "b", config, workers=1, progress=False)
    c = build_stimulus_set(items, tmp_path / "c",
                           BuildConfig(levels_percent=(1.0, 10.0, 100.0), seed=1),
                           workers=2, progress=False)
    for name in ("manifest.csv", "contact_sheet.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    rows_a, rows_c = read_stimulus_manifest(a), read_stimulus_manifest(c)
    for ra, rc in zip(rows_a, rows_c, strict=True):
        assert (a / ra["file"]).read_bytes() == (b / ra["file"]).read_bytes()
        if ra["level_percent"] is None:  # the full image has no noise
            assert ra["sha256"] == rc["sha256"]
        else:
            assert ra["sha256"] != rc["sha256"] and ra["seed"] != rc["seed"]


def test_adding_an_image_leaves_the_other_images_stimuli_unchanged(tmp_path):
    items = make_synthetic_items(tmp_path, 2, 2)
    config = BuildConfig(levels_percent=(5.0, 50.0), full=False)
    small = build_stimulus_set(items[:3], tmp_path / "small", config, workers=1, progress=False)
    large = build_stimulus_set(items, tmp_path / "large", config, workers=1, progress=False)
    sha_small = {r["stimulus_id"]: r["sha256"] for r in read_stimulus_manifest(small)}
    sha_large = {r["stimulus_id"]: r["sha256"] for r in read_stimulus_manifest(large)}
    assert len(sha_small) == 6 and all(sha_large[k] == v for k, v in sha_small.items())
