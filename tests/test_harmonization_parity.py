"""The suite's harmonizer and "where" code against the authors' own (`harmonization` 0.0.9,
TensorFlow).

Inputs are drawn here with fixed seeds and saved as .npy;
tests/keras_side/harmonization_reference.py runs the authors' functions on them in .venv-keras
and writes their outputs back. Agreement is max|Δ| / max|authors'| ≤ 1e-5 unless a test says
otherwise and why. Where the authors' code differs from paradigm §3, a test asserts the
difference (docs/harmonizer.md, "Checked against the authors' code").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.harmonizer import loss as hz
from models.harmonizer.clickme import prepare_image
from models.human_maps import blur, blur_kernel, prepare_human_maps
from models.saliency import input_gradients, max_abs_saliency
from models.where import CLICKME_CEILING, alignment, spearman_rows, top_fraction_overlap
from suite.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
KERAS_PYTHON = ROOT / ".venv-keras" / "bin" / "python"
SCRIPT = ROOT / "tests" / "keras_side" / "harmonization_reference.py"
TOLERANCE = 1e-5
SEED = 16
N_CLASSES = 10


def rel(ours, theirs) -> float:
    """max|Δ| / max|theirs|."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def blobs(rng: np.random.Generator, n: int, size: int, count: int = 3) -> np.ndarray:
    """(n, size, size) float32 sums of Gaussian blobs, ≥ 0: importance-map-like."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = np.zeros((n, size, size))
    for i in range(n):
        for _ in range(count):
            cy, cx = rng.uniform(0.1, 0.9, 2) * size
            width = rng.uniform(0.05, 0.2) * size
            out[i] += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)
                                                     / (2 * width**2))
    return out.astype(np.float32)


def write_inputs(d: Path) -> None:
    rng = np.random.default_rng(SEED)
    save = lambda name, a: np.save(d / f"in_{name}.npy", a)  # noqa: E731
    save("seed", np.array(SEED))
    for size in (224, 64, 37):
        save(f"pyramid_{size}", (blobs(rng, 3, size) + rng.normal(0, 0.1, (3, size, size)))
             .astype(np.float32))
    save("blur", (blobs(rng, 3, 64) + rng.uniform(0, 0.2, (3, 64, 64))).astype(np.float32))
    save("clickme_image", rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8))
    save("clickme_heat", (255 * blobs(rng, 3, 256, count=2) / 2).clip(0, 255).astype(np.uint8))
    save("clickme_label", np.array([3, 500, 999]))
    # a signed gradient-like saliency and human maps; the second image has no map (token 0)
    save("term_sal", (rng.normal(0, 1, (4, 224, 224)) * blobs(rng, 4, 224)).astype(np.float32))
    save("term_human", blobs(rng, 4, 224))
    save("term_tokens", np.array([1, 0, 1, 1], np.float32))
    save("e2e_images", rng.normal(0, 1, (6, 64, 64, 3)).astype(np.float32))
    save("e2e_labels", np.array([0, 3, 7, 3, 9, 1]))
    save("e2e_maps", blobs(rng, 6, 64))
    save("e2e_tokens", np.array([1, 1, 0, 1, 0, 1], np.float32))
    save("eval_images", rng.normal(0, 1, (6, 64, 64, 3)).astype(np.float32))
    save("eval_maps", blobs(rng, 6, 64))
    save("eval_labels", np.array([2, 5, 5, 0, 8, 4]))
    save("spearman_a", (blobs(rng, 5, 64) + rng.uniform(0, 0.05, (5, 64, 64))).astype(np.float32))
    save("spearman_b", (blobs(rng, 5, 64) + rng.uniform(0, 0.05, (5, 64, 64))).astype(np.float32))
    # maps that are zero on more than 90 % of their pixels: ties at the 10 % threshold
    ties_a, ties_b = blobs(rng, 4, 64, count=1), blobs(rng, 4, 64, count=1)
    ties_a[ties_a < np.quantile(ties_a, 0.95, axis=(1, 2), keepdims=True)] = 0
    ties_b[ties_b < np.quantile(ties_b, 0.93, axis=(1, 2), keepdims=True)] = 0
    save("ties_a", ties_a)
    save("ties_b", ties_b)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """Inputs written here, the authors' outputs read back: (folder, result.json as a dict)."""
    if not KERAS_PYTHON.exists():
        pytest.fail(f"{KERAS_PYTHON} is missing: run 'make keras-env' (make test builds it)")
    d = tmp_path_factory.mktemp("harmonization")
    write_inputs(d)
    done = subprocess.run([str(KERAS_PYTHON), str(SCRIPT), str(d)], capture_output=True,
                          text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return d, json.loads((d / "result.json").read_text())


def inp(ref, name):
    return np.load(ref[0] / f"in_{name}.npy")


def out(ref, name):
    return np.load(ref[0] / f"out_{name}.npy")


def test_reference_is_the_pinned_wheel(ref):
    assert ref[1]["version"] == "0.0.9"
    assert "site-packages" in ref[1]["package_dir"]


@pytest.mark.parametrize("size", [224, 64, 37])
def test_pyramid_each_level(ref, size):
    """Binomial 5×5, stride 2, TF "same" zero padding: every level within 1e-5 of the authors'."""
    maps = torch.from_numpy(inp(ref, f"pyramid_{size}"))[:, None]
    ours = hz.gaussian_pyramid(maps)
    # Difference: the authors build num_levels + 1 = 6 levels and use the first 5; we build 5.
    assert ref[1][f"pyramid_{size}_levels"] == 6
    assert len(ours) == 5
    for i, level in enumerate(ours):
        err = rel(level[:, 0].numpy(), out(ref, f"pyramid_{size}_{i}"))
        print(f"pyramid {size} level {i} {tuple(level.shape[-2:])}: {err:.1e}")
        assert err <= TOLERANCE, (i, err)


def test_blur_kernel_and_blur(ref):
    """The 10×10 σ = 10 kernel and the blur of 64-px maps equal the authors' common/blur.py."""
    theirs = out(ref, "blur_kernel")
    assert rel(blur_kernel(), theirs) <= TOLERANCE
    maps = torch.from_numpy(inp(ref, "blur"))[:, None]
    err = rel(blur(maps)[:, 0].numpy(), out(ref, "blur"))
    print(f"blur: {err:.1e}")
    assert err <= TOLERANCE
    # Difference from paradigm §3's "taps at offsets −5…4" in both directions: the authors'
    # meshgrid runs x over −5…4 but y over 4…−5, so the kernel's peak is at row 4, column 5,
    # and the kernel read literally from the paradigm (peak at 5, 5) is the rows flipped.
    assert np.unravel_index(theirs.argmax(), theirs.shape) == (4, 5)
    g = np.exp(-(np.arange(-5, 5) ** 2) / 200.0)
    literal = np.outer(g, g) / np.outer(g, g).sum()
    assert rel(literal, theirs) > 1e-2
    np.testing.assert_allclose(literal[::-1], theirs, rtol=1e-5)


def test_clickme_record_image_and_map(ref):
    """prepare_human_maps / prepare_image on the decoded JPEGs = the authors'
    parse_clickme_prototype."""
    heat = out(ref, "clickme_decoded_heat")
    ours = prepare_human_maps(heat)[:, 0].numpy()
    err = rel(ours, out(ref, "clickme_heat"))
    print(f"clickme heatmap 256 → 64 → blur → 224: {err:.1e}")
    assert err <= TOLERANCE
    images = out(ref, "clickme_decoded_image")
    ours_img = np.stack([prepare_image(im).permute(1, 2, 0).numpy() * 255 for im in images])
    # The authors keep the image in 0…255; the suite divides by 255 (the model's preprocessing).
    assert rel(ours_img, out(ref, "clickme_image")) <= TOLERANCE
    assert ref[1]["clickme_labels"] == [3, 500, 999]


def test_standardize_cut_and_harmonization_term(ref):
    """standardize + relu, the per-level token-weighted MSE and their mean over the 5 levels."""
    sal, human = torch.from_numpy(inp(ref, "term_sal")), torch.from_numpy(inp(ref, "term_human"))
    tokens = torch.from_numpy(inp(ref, "term_tokens"))
    s_cut, h_cut = hz.standardize_relu(sal), hz.standardize_relu(human)
    assert rel(s_cut.numpy(), out(ref, "term_sal_cut")) <= TOLERANCE
    assert rel(h_cut.numpy(), out(ref, "term_human_cut")) <= TOLERANCE
    levels = hz.pyramid_mse(s_cut, h_cut, tokens)
    theirs = np.array(ref[1]["term_levels"])
    assert len(theirs) == 6 and theirs[5] > 0      # a sixth level exists in theirs, unused
    err_levels = rel(levels.numpy(), theirs[:5])
    err_term = rel(levels.mean().numpy(), ref[1]["term"])
    print(f"term per level: {err_levels:.1e}, mean over levels: {err_term:.1e}")
    assert err_levels <= TOLERANCE
    assert err_term <= TOLERANCE
    # The paper writes a sum over levels; the code takes the mean of the first five.
    assert ref[1]["term"] == pytest.approx(theirs[:5].mean(), rel=1e-6)
    assert abs(ref[1]["term"] - theirs[:5].sum()) > 1.0 * ref[1]["term"]


class Tiny(nn.Module):
    """The Keras network of harmonization_reference.tiny_model, in PyTorch."""

    def __init__(self):
        super().__init__()
        self.stem_conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8, eps=1e-3)           # Keras' default epsilon
        self.subnet_conv = nn.Conv2d(8, 16, 3, stride=2)
        self.dw_conv = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.patch_embed = nn.Conv2d(16, 16, 1)
        self.head = nn.Linear(16, N_CLASSES)

    def forward(self, x):
        x = F.silu(self.stem_bn(self.stem_conv(x)))
        top, bottom = hz.tf_same_padding(x.shape[-2], 3, 2)  # stride 2 "same": 0 before, 1 after
        left, right = hz.tf_same_padding(x.shape[-1], 3, 2)
        x = F.relu(self.subnet_conv(F.pad(x, (left, right, top, bottom))))
        x = self.patch_embed(torch.tanh(self.dw_conv(x)))
        return self.head(x.mean(dim=(2, 3)))


KERAS_TO_TORCH = {"kernel": "weight", "depthwise_kernel": "weight", "bias": "bias",
                  "gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                  "moving_variance": "running_var"}


def torch_key(name: str) -> str:
    """Keras variable name "layer/var:0" → PyTorch state-dict key "layer.param"."""
    layer, var = name.split(":")[0].split("/")
    return f"{layer}.{KERAS_TO_TORCH[var]}"


def to_torch(name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    """Keras variable and its array → PyTorch state-dict key and layout."""
    if name.split(":")[0].endswith("/depthwise_kernel"):   # (kh, kw, C, 1) → (C, 1, kh, kw)
        value = value.transpose(2, 3, 0, 1)
    elif name.split(":")[0].endswith("/kernel"):
        # HWIO → OIHW; Dense (in, out) → (out, in)
        value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
    return torch_key(name), value


def tiny(ref) -> Tiny:
    model = Tiny()
    with np.load(ref[0] / "tiny_weights.npz") as z:
        state = dict(to_torch(k, z[k]) for k in z.files)
    missing = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                                     for k, v in state.items()}, strict=False)
    assert missing.missing_keys == [] and missing.unexpected_keys == []
    return model


def suite_loss(ref, dtype: torch.dtype) -> tuple[hz.HarmonizerLoss, dict[str, np.ndarray]]:
    """Our loss on the end-to-end batch and the parameter gradients, network in ``dtype``."""
    model = tiny(ref).to(dtype).train()        # the authors call the model with training=True
    images = torch.from_numpy(inp(ref, "e2e_images")).permute(0, 3, 1, 2).to(dtype)
    result = hz.harmonizer_loss(model, images, torch.from_numpy(inp(ref, "e2e_labels")),
                                torch.from_numpy(inp(ref, "e2e_maps")),
                                torch.from_numpy(inp(ref, "e2e_tokens")))
    model.zero_grad()
    result.total.backward()
    return result, {k: p.grad.double().numpy() for k, p in model.named_parameters()}


def test_total_loss_and_gradients_end_to_end(ref):
    """The authors' harmonizer_loss (TF) and ours (torch) on one batch of the same tiny network.

    Loss values, saliency and maps: ≤ 1e-5 relative. Gradients: ≤ 1e-5 relative to the largest
    entry of each tensor, or within 3× that tensor's own float32 round-off where that is larger
    (never above 1e-4): a bias feeding a global mean sums 6 × 32 × 32 = 6,144 float32 terms,
    and our float32 gradient is itself ~2e-5 away from the same computation in float64.
    """
    result, grads = suite_loss(ref, torch.float32)
    _, grads64 = suite_loss(ref, torch.float64)
    r = ref[1]
    errs = {"saliency": rel(result.saliency.detach().numpy(), out(ref, "e2e_saliency")),
            "cross-entropy": rel(result.task.item(), r["e2e_cce"]),
            "harmonization": rel(result.harmonization.item(), r["e2e_harmonization"]),
            "weights": rel(result.weights.item(), r["e2e_weight"]),
            "total": rel(result.total.item(), r["e2e_total"])}
    # the maps just before the pyramid: standardized saliency, human maps rescaled to its peak
    s_cut = hz.standardize_relu(result.saliency.detach())
    h_rescaled = hz.rescale_to_peak(hz.standardize_relu(torch.from_numpy(inp(ref, "e2e_maps"))),
                                    s_cut)
    errs["standardized saliency"] = rel(s_cut.numpy(), out(ref, "e2e_sal_cut"))
    errs["rescaled human maps"] = rel(h_rescaled.numpy(), out(ref, "e2e_human_rescaled"))
    for k, v in errs.items():
        print(f"e2e {k}: {v:.1e}")
    assert max(errs.values()) <= TOLERANCE, errs
    with np.load(ref[0] / "out_e2e_grads.npz") as z:
        assert sorted(z.files) == sorted(r["tiny_trainable"])
        assert {torch_key(n) for n in z.files} == set(grads)
        for name in z.files:
            key, theirs = to_torch(name, z[name])
            err, floor = rel(grads[key], theirs), rel(grads[key], grads64[key])
            print(f"e2e grad {key}: {err:.1e} (our float32 vs float64: {floor:.1e})")
            assert err <= min(max(TOLERANCE, 3 * floor), 1e-4), (key, err, floor)
    # The harmonization term is not negligible here, so its gradient is part of what is compared.
    assert r["e2e_harmonization"] > 0.05 * r["e2e_cce"]
    # Label smoothing: Keras' CategoricalCrossentropy(label_smoothing=0.1) smooths the one-hot
    # labels to y·0.9 + 0.1/C, which is torch's label_smoothing=0.1 (checked by the value above).


def test_weight_decay_set(ref):
    """Both decay the same variables of the tiny network; ours by "bn." where theirs says "bn/"."""
    decayed_theirs = {torch_key(n) for n in ref[1]["e2e_l2_names"]}
    ours = {name for name, _ in hz.decayed_parameters(tiny(ref))}
    assert ours == decayed_theirs
    # BN ("stem_bn/…") and "patch_embed" are skipped by both; biases are decayed by both.
    assert "stem_bn.weight" not in ours and "patch_embed.weight" not in ours
    assert "head.bias" in ours
    # Difference from paradigm §3's "names contain none of … bn …": the authors' filter is
    # 'bn/' (a layer whose name ends in bn), so "subnet_conv" — "bn" inside a word — is decayed.
    assert "subnet_conv/kernel:0" in ref[1]["e2e_l2_names"]
    assert hz.is_decayed("subnet_conv.weight") and not hz.is_decayed("stem_bn.weight")


def test_spearman_alignment_score_and_ceiling(ref):
    """Per-image ρ, the alignment score and the ceiling equal evaluate_clickme's on the tiny net."""
    r = ref[1]
    assert CLICKME_CEILING == r["human_spearman_ceiling"] == 0.65753
    a, b = inp(ref, "spearman_a"), inp(ref, "spearman_b")
    assert rel(spearman_rows(a, b), r["spearman_rho"]) <= TOLERANCE
    model = tiny(ref).eval()
    images = torch.from_numpy(inp(ref, "eval_images")).permute(0, 3, 1, 2)
    sal = max_abs_saliency(input_gradients(model, images,
                                           torch.from_numpy(inp(ref, "eval_labels"))))
    assert rel(sal.numpy(), out(ref, "eval_saliency")) <= TOLERANCE
    ours = alignment(sal.numpy(), inp(ref, "eval_maps"), n_boot=10)
    err_rho = rel(ours.per_image_rho, r["eval_spearman"])
    err_score = rel(ours.score, r["eval_alignment_score"])
    print(f"per-image rho: {err_rho:.1e}, alignment score: {err_score:.1e}")
    assert err_rho <= TOLERANCE and err_score <= TOLERANCE
    # Difference: a constant map gives ρ = NaN in both, which the authors average in (a NaN
    # score); the suite refuses it by name.
    flat = np.zeros((1, 64, 64), np.float32)
    assert np.isnan(spearman_rows(flat, a[:1])).all()
    with pytest.raises(InputError, match="constant map"):
        alignment(np.concatenate([flat, a[1:2]]), b[:2], n_boot=10)


def test_dice_iou_top_ten_percent(ref):
    """Equal on continuous 64×64 maps; on maps with tied zeros the two definitions differ."""
    r = ref[1]
    dice, iou = top_fraction_overlap(inp(ref, "spearman_a"), inp(ref, "spearman_b"))
    assert rel(dice, r["spearman_dice"]) <= TOLERANCE and rel(iou, r["spearman_iou"]) <= TOLERANCE
    # The authors threshold at "> 90th percentile" (linear interpolation): D − ⌊0.9(D−1)⌋ − 1
    # pixels on tie-free maps, which is round(0.1·D) at 64² and 224² but not at every size.
    count = lambda d: d - int(np.floor(0.9 * (d - 1))) - 1  # noqa: E731
    assert count(64 * 64) == round(0.1 * 64 * 64) and count(224 * 224) == round(0.1 * 224 * 224)
    assert count(32 * 32) == 103 != round(0.1 * 32 * 32)
    # Maps zero on > 90 % of pixels: theirs keeps only the nonzero pixels (fewer than 10 %), the
    # suite exactly 10 % (ties in arbitrary order), so the scores differ.
    dice_t, iou_t = top_fraction_overlap(inp(ref, "ties_a"), inp(ref, "ties_b"))
    assert np.abs(dice_t - np.array(r["ties_dice"])).max() > 0.05
    assert np.abs(iou_t - np.array(r["ties_iou"])).max() > 0.05
    # Spearman's ρ uses average ranks for ties in both, and agrees.
    assert rel(spearman_rows(inp(ref, "ties_a"), inp(ref, "ties_b")), r["ties_rho"]) <= TOLERANCE
