"""Saliency on networks with known gradients, and the "where" alignment against scipy."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from models.__main__ import COMMANDS
from models.human_maps import prepare_human_maps
from models.saliency import input_gradients, max_abs_saliency, signed_mean_saliency
from models.where import (
    CLICKME_CEILING,
    alignment,
    evaluate,
    load_map,
    read_where_set,
    spearman_rows,
    split_half_ceiling,
    top_fraction_overlap,
)
from models.zoo import create
from suite.command_line import dispatch
from suite.errors import InputError
from tests.support.data import IMAGENET_SAMPLE, require


def test_saliency_of_a_linear_model_is_its_weight_row():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3 * 8 * 8, 10)
    model = torch.nn.Sequential(torch.nn.Flatten(), lin).eval()
    x = torch.randn(4, 3, 8, 8)
    target = torch.tensor([0, 3, 3, 9])
    grad = input_gradients(model, x, target)
    w = lin.weight.detach().view(10, 3, 8, 8)[target]
    torch.testing.assert_close(grad, w)
    torch.testing.assert_close(max_abs_saliency(grad), w.abs().amax(dim=1))
    torch.testing.assert_close(signed_mean_saliency(grad), w.mean(dim=1))


def test_saliency_of_a_quadratic_model_depends_on_the_input():
    # logit_c = c · Σ x²  ⇒  ∂/∂x = 2 c x
    class Quad(torch.nn.Module):
        def forward(self, x):
            return (x**2).flatten(1).sum(1, keepdim=True) * torch.arange(3.0)

    x = torch.randn(2, 3, 5, 5)
    grad = input_gradients(Quad(), x, torch.tensor([2, 1]))
    torch.testing.assert_close(grad, 2 * torch.tensor([2.0, 1.0]).view(2, 1, 1, 1) * x)


def test_spearman_equals_scipy_on_random_maps_with_ties():
    rng = np.random.default_rng(1)
    a = rng.random((5, 224 * 224))
    b = np.round(rng.random((5, 224 * 224)) * 20) + 0.3 * a   # many ties, some shared signal
    b[2] = np.round(a[2] * 7)                                 # heavy ties, strong correlation
    ours = spearman_rows(a, b)
    ref = [spearmanr(a[i], b[i]).statistic for i in range(5)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert ours[2] > 0.9


def test_top_fraction_dice_and_iou():
    a = np.arange(100.0)[None]                 # top 10 %: pixels 90–99
    b = np.roll(np.arange(100.0), -5)[None]    # top 10 %: pixels 85–94 → 5 shared
    dice, iou = top_fraction_overlap(a, b)
    assert dice[0] == pytest.approx(0.5) and iou[0] == pytest.approx(5 / 15)
    dice, iou = top_fraction_overlap(a, a)
    assert dice[0] == 1.0 and iou[0] == 1.0


def test_alignment_divides_by_the_ceiling_and_bootstraps_over_images():
    rng = np.random.default_rng(2)
    human = rng.random((20, 32, 32))
    sal = human + rng.random((20, 32, 32)) * np.linspace(0.1, 3, 20)[:, None, None]
    r = alignment(sal, human, n_boot=500, seed=3)
    rho = spearman_rows(sal, human)
    assert r.mean_rho == pytest.approx(rho.mean())
    assert r.score == pytest.approx(rho.mean() / CLICKME_CEILING)
    assert r.score_ci[0] < r.score < r.score_ci[1]
    assert r.score_ci[1] - r.score_ci[0] > 0.01
    with pytest.raises(InputError, match="constant map"):
        alignment(sal[:2], np.zeros((2, 32, 32)))


def test_split_half_ceiling():
    rng = np.random.default_rng(4)
    signal = rng.random((6, 1, 64, 64))
    same = [np.repeat(s, 4, axis=0) for s in signal]
    assert split_half_ceiling(same, n_splits=3, progress=False) == pytest.approx(1.0)
    quiet = [s + 0.3 * rng.random((8, 64, 64)) for s in signal]
    noisy = [s + 3.0 * rng.random((8, 64, 64)) for s in signal]
    c_quiet = split_half_ceiling(quiet, n_splits=5, progress=False)
    c_noisy = split_half_ceiling(noisy, n_splits=5, progress=False)
    assert 0 < c_noisy < c_quiet < 1
    sb = split_half_ceiling(noisy, n_splits=5, spearman_brown=True, progress=False)
    assert sb == pytest.approx(2 * c_noisy / (1 + c_noisy))
    with pytest.raises(InputError, match="participants"):
        split_half_ceiling([np.zeros((1, 8, 8))], progress=False)


def test_map_loading_formats_and_wrong_size(tmp_path):
    m = (np.arange(256 * 256) % 251).reshape(256, 256).astype(np.uint8)
    np.save(tmp_path / "a.npy", m.astype(np.float32))
    Image.fromarray(m).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_map(tmp_path / "a.npy"), load_map(tmp_path / "a.png"))
    np.save(tmp_path / "small.npy", np.zeros((224, 224)))
    with pytest.raises(InputError, match=r"small.npy.*\(224, 224\), expected \(256, 256\)"):
        load_map(tmp_path / "small.npy")
    bad = np.zeros((256, 256))
    bad[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputError, match="NaN"):
        load_map(tmp_path / "nan.npy")


def _photo_256(name: str) -> np.ndarray:
    sample = require(IMAGENET_SAMPLE)
    im = Image.open(sample / name).convert("RGB")
    s = 256 / min(im.size)
    im = im.resize((max(256, round(im.width * s)), max(256, round(im.height * s))), Image.BICUBIC)
    left, top = (im.width - 256) // 2, (im.height - 256) // 2
    return np.asarray(im.crop((left, top, left + 256, top + 256)))


@pytest.fixture(scope="module")
def where_set(tmp_path_factory):
    """Four real photos at 256×256 with synthetic maps: a Gaussian blob on the image centre."""
    root = tmp_path_factory.mktemp("where")
    (root / "images").mkdir()
    (root / "maps").mkdir()
    names = ["n01491361_tiger_shark.JPEG", "n01534433_junco.JPEG",
             "n01616318_vulture.JPEG", "n01664065_loggerhead.JPEG"]
    yy, xx = np.mgrid[:256, :256]
    for i, n in enumerate(names):
        Image.fromarray(_photo_256(n)).save(root / "images" / f"im{i}.png")
        blob = np.exp(-((yy - 128 - 10 * i) ** 2 + (xx - 128) ** 2) / (2 * 40.0**2))
        np.save(root / "maps" / f"im{i}.npy", blob.astype(np.float32))
    return root


def test_where_on_real_photos_uses_blurred_maps_and_true_class(where_set):
    items = read_where_set(where_set / "images", where_set / "maps")
    assert [it["image_id"] for it in items] == ["im0", "im1", "im2", "im3"]
    model = create("efficientnet_lite0_imagenet")
    r = evaluate(model, items, n_boot=200, progress=False)
    # independently: the true-class gradient of the same preprocessed images, maps blurred per
    # paradigm §3
    from dataclasses import replace

    from models.preprocessing import load_rgb, to_model_input, whole_image
    prep = replace(whole_image(model.preprocessing), interpolation="bilinear")
    x = to_model_input([load_rgb(it["image"]) for it in items], prep)
    with torch.no_grad():
        top1 = model.module(x).argmax(1)
    sal = max_abs_saliency(input_gradients(model.module, x, top1)).numpy()
    human = prepare_human_maps(np.stack([load_map(it["map"]) for it in items]))[:, 0].numpy()
    assert sal.shape == human.shape == (4, 224, 224)
    np.testing.assert_allclose(r.per_image_rho, spearman_rows(sal, human), rtol=1e-6)
    # a centred object draws gradient to the centre: positive agreement with a centre blob
    assert r.mean_rho > 0
    assert 0 <= r.iou <= r.dice <= 1


def test_where_command_line_rejects_a_map_of_the_wrong_size(where_set, tmp_path, capsys):
    maps = tmp_path / "maps"
    maps.mkdir()
    for p in (where_set / "maps").iterdir():
        np.save(maps / p.name, np.load(p)[:200, :200])
    rc = dispatch("python -m models", COMMANDS,
                  ["where", "--model", "efficientnet_lite0_imagenet",
                   "--images", str(where_set / "images"), "--maps", str(maps)])
    assert rc == 2
    assert "expected (256, 256)" in capsys.readouterr().err


def test_where_reads_a_build_manifest_with_class_indices(where_set, tmp_path):
    manifest = tmp_path / "build.csv"
    manifest.write_text("image,map,image_id,category,class_index\n"
                        f"{where_set}/images/im0.png,{where_set}/maps/im0.npy,shark,animal,3\n"
                        f"{where_set}/images/im1.png,{where_set}/maps/im1.npy,junco,animal,\n",
                        encoding="utf-8")
    items = read_where_set(manifest, None)
    assert [(it["image_id"], it["class_index"]) for it in items] == [("shark", 3), ("junco", None)]
    assert items[0]["map"] == Path(f"{where_set}/maps/im0.npy")
    with pytest.raises(InputError, match="needs --maps"):
        read_where_set(where_set / "images", None)


@pytest.mark.parametrize("case", ["map", "manifest", "folder", "under-file"])
def test_where_out_that_is_an_input_or_not_a_file_is_refused_before_work(where_set, tmp_path,
                                                                          capsys, case):
    manifest = tmp_path / "build.csv"
    manifest.write_text("image,map,image_id,class_index\n"
                        f"{where_set}/images/im0.png,{where_set}/maps/im0.npy,shark,3\n",
                        encoding="utf-8")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    kept = {p: p.read_bytes() for p in (manifest, where_set / "maps" / "im0.npy", blocker)}
    out = {"map": where_set / "maps" / "im0.npy", "manifest": manifest, "folder": tmp_path,
           "under-file": blocker / "result.json"}[case]
    # an unknown model: had the output not been refused first, the error would name the model
    rc = dispatch("python -m models", COMMANDS,
                  ["where", "--model", "no_such_model_at_all", "--images", str(manifest),
                   "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and str(out) in err and "unknown model" not in err
    assert {p: p.read_bytes() for p in kept} == kept


def test_split_half_ceiling_equals_preparing_each_half_mean():
    # the ceiling prepares each participant's map once (the preparation is linear); the
    # definition prepares each half's mean map: the two must agree
    from models.human_maps import prepare_human_maps
    from models.where import spearman_rows

    rng = np.random.default_rng(3)
    maps = [rng.random((5, 64, 64)).astype(np.float32) ** 3 for _ in range(3)]
    got = split_half_ceiling(maps, n_splits=4, seed=11, progress=False)
    split_rng, means = np.random.default_rng(11), []
    for _ in range(4):
        a, b = [], []
        for m in maps:
            order = split_rng.permutation(m.shape[0])
            a.append(m[order[:2]].mean(axis=0))
            b.append(m[order[2:4]].mean(axis=0))
        blurred = prepare_human_maps(np.stack(a + b))[:, 0].numpy()
        means.append(np.nanmean(spearman_rows(blurred[:3], blurred[3:])))
    assert got == pytest.approx(float(np.mean(means)), abs=1e-4)
