"""The harmonizer loss against an independent NumPy reading of paradigm §3, level by level."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn

from models.harmonizer import loss as hz

torch.set_num_threads(2)


# ---- the reference, written from the paradigm text only (docs/paradigm.md §3) -----------------

def np_pad_same(n: int) -> tuple[int, int]:
    # TensorFlow "same", kernel 5, stride 2: output ceil(n/2); leftover padding goes after.
    out = math.ceil(n / 2)
    total = max((out - 1) * 2 + 5 - n, 0)
    return total // 2, total - total // 2


def np_down(m: np.ndarray) -> np.ndarray:
    """(N, H, W) → (N, ceil(H/2), ceil(W/2)) binomial blur, stride 2, zero padding."""
    taps = np.array([1, 4, 6, 4, 1], dtype=np.float64)
    k = np.outer(taps, taps) / 256.0
    (t, b), (lft, r) = np_pad_same(m.shape[1]), np_pad_same(m.shape[2])
    p = np.pad(m, ((0, 0), (t, b), (lft, r)))
    oh, ow = math.ceil(m.shape[1] / 2), math.ceil(m.shape[2] / 2)
    out = np.zeros((m.shape[0], oh, ow))
    for i in range(5):
        for j in range(5):
            out += k[i, j] * p[:, i:i + 2 * oh:2, j:j + 2 * ow:2]
    return out


def np_std_relu(m: np.ndarray) -> np.ndarray:
    mu = m.mean(axis=(1, 2), keepdims=True)
    sd = m.std(axis=(1, 2), keepdims=True)
    return np.maximum((m - mu) / (sd + 1e-5), 0.0)


def np_levels(sal: np.ndarray, hum: np.ndarray, tok: np.ndarray) -> np.ndarray:
    s = np_std_relu(sal)
    h = np_std_relu(hum)
    h = h / (h.max(axis=(1, 2), keepdims=True) + 1e-6) * (s.max(axis=(1, 2), keepdims=True) + 1e-6)
    out = []
    for _ in range(5):
        out.append(((s - h) ** 2 * tok[:, None, None]).sum() / s.size)
        s, h = np_down(s), np_down(h)
    return np.array(out)


def np_cross_entropy(logits: np.ndarray, labels: np.ndarray, eps: float = 0.1) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    q = np.full(logits.shape, eps / logits.shape[1])
    q[np.arange(len(labels)), labels] += 1 - eps
    return float(-(q * logp).sum(axis=1).mean())


# ---- tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n,expected", [(224, (1, 2)), (112, (1, 2)), (14, (1, 2)), (7, (2, 2)),
                                        (64, (1, 2)), (1, (2, 2))])
def test_same_padding_matches_tensorflow_rule(n, expected):
    assert hz.tf_same_padding(n) == expected == np_pad_same(n)


def test_pyramid_sizes_at_224_and_64():
    assert [m.shape[-1] for m in hz.gaussian_pyramid(torch.zeros(1, 1, 224, 224))] == \
        [224, 112, 56, 28, 14]
    assert [m.shape[-1] for m in hz.gaussian_pyramid(torch.zeros(1, 1, 64, 64))] == \
        [64, 32, 16, 8, 4]


@pytest.mark.parametrize("size", [224, 64, 37])
def test_levels_match_numpy_reference(size):
    rng = np.random.default_rng(size)
    n = 4
    sal = rng.normal(size=(n, size, size))
    hum = rng.random((n, size, size)) ** 3
    tok = np.array([1.0, 0.0, 1.0, 1.0])
    ref = np_levels(sal, hum, tok)
    got = hz.harmonization_terms(torch.tensor(sal, dtype=torch.float32),
                                 torch.tensor(hum, dtype=torch.float32),
                                 torch.tensor(tok)).numpy()
    assert got.shape == (5,)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # the term really depends on the tokens: zeroing them all gives zero
    zero = hz.harmonization_terms(torch.tensor(sal, dtype=torch.float32),
                                  torch.tensor(hum, dtype=torch.float32), torch.zeros(n))
    assert float(zero.abs().max()) == 0.0 and ref.min() > 1e-4


class LinearWithEmbed(nn.Module):
    """logits = W · (x + pos_embed) + b: its saliency is W[y], known in closed form."""

    def __init__(self, size: int, classes: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, 3, size, size) * 0.1)
        self.head = nn.Linear(3 * size * size, classes)

    def forward(self, x):
        return self.head((x + self.pos_embed).flatten(1))


def test_total_loss_matches_numpy_reference():
    torch.manual_seed(0)
    size, classes, n = 32, 5, 6
    model = LinearWithEmbed(size, classes)
    x = torch.randn(n, 3, size, size)
    y = torch.tensor([0, 1, 2, 3, 4, 1])
    maps = torch.rand(n, 1, size, size)
    tok = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    out = hz.harmonizer_loss(model, x, y, maps, tok, lambda_harmonization=3.0)

    w = model.head.weight.detach().double().numpy()
    b = model.head.bias.detach().double().numpy()
    pe = model.pos_embed.detach().double().numpy()
    xn = x.double().numpy()
    logits = (xn + pe).reshape(n, -1) @ w.T + b
    sal = w[y.numpy()].reshape(n, 3, size, size).mean(axis=1)
    levels = np_levels(sal, maps[:, 0].double().numpy(), tok.double().numpy())
    ce = np_cross_entropy(logits, y.numpy())
    l2 = ((w ** 2).sum() + (b ** 2).sum()) / 2  # pos_embed is excluded by name
    total = ce + 3.0 * levels.mean() + 1e-5 * l2

    np.testing.assert_allclose(out.levels.detach().numpy(), levels, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(out.task.detach()), ce, rtol=1e-5)
    np.testing.assert_allclose(float(out.weights.detach()), l2, rtol=1e-5)
    np.testing.assert_allclose(float(out.total.detach()), total, rtol=1e-5)


def test_no_gradient_flows_through_the_saliency_peak():
    s = torch.rand(2, 8, 8, requires_grad=True)
    h = torch.rand(2, 8, 8)
    # s enters once directly: its gradient must be exactly that, nothing from the peak
    (hz.rescale_to_peak(h, s).sum() + s.sum()).backward()
    assert torch.equal(s.grad, torch.ones_like(s))


def test_double_backward_reaches_parameters_and_descends():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 0])
    maps = torch.zeros(4, 1, 32, 32)
    maps[:, :, 4:12, 4:12] = 1.0
    tok = torch.ones(4)
    out = hz.harmonizer_loss(model, x, y, maps, tok)
    first = model[0].weight
    (g_harm,) = torch.autograd.grad(out.harmonization, first, retain_graph=True)
    assert float(g_harm.abs().sum()) > 0  # the harmonization term reaches the first conv
    # a few gradient steps on the harmonization term alone lower it
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = float(out.harmonization.detach())
    for _ in range(20):
        opt.zero_grad()
        hz.harmonizer_loss(model, x, y, maps, tok).harmonization.backward()
        opt.step()
    after = float(hz.harmonizer_loss(model, x, y, maps, tok).harmonization.detach())
    assert after < 0.9 * before


def test_weight_decay_excludes_norms_and_embeddings_in_timm_models():
    resnet = dict(hz.decayed_parameters(timm.create_model("resnet18", pretrained=False)))
    assert "conv1.weight" in resnet and "fc.bias" in resnet
    assert "bn1.weight" not in resnet and "layer1.0.bn1.bias" not in resnet
    # timm calls this BatchNorm "downsample.1": excluded by its type
    assert "layer2.0.downsample.0.weight" in resnet
    assert "layer2.0.downsample.1.weight" not in resnet
    vit = dict(hz.decayed_parameters(timm.create_model("vit_tiny_patch16_224", pretrained=False)))
    assert "blocks.0.attn.qkv.weight" in vit and "head.weight" in vit
    for name in ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight",
                 "blocks.0.norm1.weight"):
        assert name not in vit


def test_loss_parts_stay_float32_under_autocast():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(2, 3, 16, 16), torch.tensor([0, 2])
    maps, tok = torch.rand(2, 1, 16, 16), torch.ones(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hz.harmonizer_loss(model, x, y, maps, tok)
    assert out.logits.dtype == torch.bfloat16  # the model did run in bf16
    assert out.levels.dtype == out.task.dtype == out.total.dtype == torch.float32
    # the pyramid at float32 equals the same pyramid computed outside autocast
    ref = hz.harmonization_terms(out.saliency.detach(), maps[:, 0], tok)
    torch.testing.assert_close(out.levels.detach(), ref, rtol=1e-6, atol=1e-7)
