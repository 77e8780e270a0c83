"""The neural harmonizer loss (paradigm §3), ported from the authors' TensorFlow training code.

total = cross-entropy (label smoothing 0.1) + λ · harmonization + 1e-5 · Σ‖w‖²/2, where the
harmonization term compares the model's true-class saliency with the human importance map
on a 5-level Gaussian pyramid. The saliency is taken with ``create_graph=True``, so the
gradient of the loss reaches the parameters through the saliency (double backward).

The pyramid works at any input size: level 0 is the map itself and each further level is a
binomial blur with stride 2 and TensorFlow "same" zero padding, so 224 gives 224, 112, 56,
28, 14 and a 64-px miniature gives 64, 32, 16, 8, 4.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

BINOMIAL_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)
PYRAMID_LEVELS = 5
STANDARDIZE_EPS = 1e-5
PEAK_EPS = 1e-6
LABEL_SMOOTHING = 0.1
LAMBDA_HARMONIZATION = 1.0
LAMBDA_WEIGHTS = 1e-5
# The authors' code skips weights whose Keras names contain these; "cls_token" is timm's
# spelling of Keras' "class_token" and is added so a timm ViT is treated the same way. Their
# "bn/" (a layer whose name ends in bn, "stem_bn/gamma") is "bn." in a PyTorch parameter name;
# "bn" inside a word ("subnet_conv") is decayed, as in their code.
DECAY_EXCLUDED_NAMES = ("norm", "Norm", "bn.", "embed", "class_token", "cls_token")
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def tf_same_padding(size: int, kernel: int = 5, stride: int = 2) -> tuple[int, int]:
    """(before, after) zero padding TensorFlow's "same" adds: 224, k5, s2 → (1, 2)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def binomial_kernel(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(1, 1, 5, 5) kernel (1,4,6,4,1)ᵀ(1,4,6,4,1)/256."""
    taps = torch.tensor(BINOMIAL_TAPS, dtype=dtype, device=device)
    k = torch.outer(taps, taps)
    return (k / k.sum())[None, None]


def downsample(maps: torch.Tensor) -> torch.Tensor:
    """One pyramid step: (N, 1, H, W) → (N, 1, ⌈H/2⌉, ⌈W/2⌉), binomial blur, TF "same" padding."""
    top, bottom = tf_same_padding(maps.shape[-2])
    left, right = tf_same_padding(maps.shape[-1])
    padded = F.pad(maps, (left, right, top, bottom))
    return F.conv2d(padded, binomial_kernel(maps.dtype, maps.device), stride=2)


def gaussian_pyramid(maps: torch.Tensor, levels: int = PYRAMID_LEVELS) -> list[torch.Tensor]:
    """``levels`` maps (N, 1, H/2^i, W/2^i), i = 0 … levels−1; level 0 is the input itself."""
    if maps.ndim != 4 or maps.shape[1] != 1:
        raise ValueError(f"expected maps of shape (N, 1, H, W), got {tuple(maps.shape)}")
    out = [maps]
    # The authors build one level more than they use; the unused one changes nothing.
    for _ in range(levels - 1):
        out.append(downsample(out[-1]))
    return out


def standardize_relu(maps: torch.Tensor) -> torch.Tensor:
    """relu((φ − mean) / (std + 1e-5)) per map over H×W; (N, H, W) → (N, H, W), population std."""
    mean = maps.mean(dim=(-2, -1), keepdim=True)
    std = maps.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return torch.relu((maps - mean) / (std + STANDARDIZE_EPS))


def rescale_to_peak(human: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
    """Human maps (N, H, W) scaled so their peak equals the saliency peak; no gradient via max s."""
    h_max = human.amax(dim=(-2, -1), keepdim=True) + PEAK_EPS
    s_max = saliency.detach().amax(dim=(-2, -1), keepdim=True) + PEAK_EPS
    return human / h_max * s_max


def saliency_maps(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) and signed true-class-logit gradients averaged over RGB, (N, H, W) float32."""
    x = images.detach().requires_grad_(True)
    logits = model(x)
    chosen = logits.gather(1, labels.view(-1, 1).long()).sum()
    # retain_graph: the same forward pass also feeds the cross-entropy's backward.
    (grad,) = torch.autograd.grad(chosen, x, create_graph=create_graph, retain_graph=True)
    return logits, grad.float().mean(dim=1)


def pyramid_mse(saliency: torch.Tensor, human: torch.Tensor, tokens: torch.Tensor,
                levels: int = PYRAMID_LEVELS) -> torch.Tensor:
    """Per-level mean of (s − h)²·token over batch × pixels, (levels,); inputs (N, H, W), (N,)."""
    ps = gaussian_pyramid(saliency[:, None], levels)
    ph = gaussian_pyramid(human[:, None], levels)
    w = tokens.to(saliency.dtype).view(-1, 1, 1, 1)
    # The mean divides by the whole batch, maps or not, exactly as the authors' code does.
    return torch.stack([((a - b) ** 2 * w).mean() for a, b in zip(ps, ph, strict=True)])


def harmonization_terms(saliency: torch.Tensor, human_maps: torch.Tensor, tokens: torch.Tensor,
                        levels: int = PYRAMID_LEVELS) -> torch.Tensor:
    """Per-level harmonization terms (levels,) from raw saliency and human maps, both (N, H, W)."""
    if saliency.shape != human_maps.shape:
        raise ValueError(f"saliency {tuple(saliency.shape)} and human maps "
                         f"{tuple(human_maps.shape)} must have the same shape")
    s = standardize_relu(saliency)
    h = rescale_to_peak(standardize_relu(human_maps.float()), s)
    return pyramid_mse(s, h, tokens, levels)


def is_decayed(name: str, module: nn.Module | None = None) -> bool:
    """Whether the L2 term covers the parameter ``name`` (owned by ``module``, if known)."""
    if any(part in name for part in DECAY_EXCLUDED_NAMES):
        return False
    # timm names some norm layers by position (a ResNet's downsample.1); Keras names always
    # said "bn"/"norm", so excluding by type keeps the authors' intent on timm models.
    return not isinstance(module, _NORM_TYPES)


def decayed_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) pairs the 1e-5 · Σ‖w‖²/2 term covers: trainable, not norm/embedding."""
    out = []
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if p.requires_grad and is_decayed(name, module):
                out.append((name, p))
    return out


def l2_term(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σ‖w‖²/2 over ``params`` (TensorFlow's l2_loss summed), a float32 scalar."""
    terms = [p.float().pow(2).sum() / 2 for p in params]
    return torch.stack(terms).sum() if terms else torch.zeros(())


@dataclass
class HarmonizerLoss:
    """The loss of one batch and its parts (scalars unless noted)."""

    total: torch.Tensor
    task: torch.Tensor
    harmonization: torch.Tensor
    weights: torch.Tensor
    levels: torch.Tensor  # (PYRAMID_LEVELS,) per-level harmonization terms
    logits: torch.Tensor  # (N, C)
    saliency: torch.Tensor  # (N, H, W), signed, still in the graph


def harmonizer_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    human_maps: torch.Tensor, tokens: torch.Tensor,
                    lambda_harmonization: float = LAMBDA_HARMONIZATION,
                    lambda_weights: float = LAMBDA_WEIGHTS,
                    label_smoothing: float = LABEL_SMOOTHING,
                    levels: int = PYRAMID_LEVELS) -> HarmonizerLoss:
    """paradigm §3 loss for images (N, 3, H, W), labels (N,), human maps (N, [1,] H, W),
    tokens (N,)."""
    if human_maps.ndim == 4:
        human_maps = human_maps[:, 0]
    logits, sal = saliency_maps(model, images, labels, create_graph=lambda_harmonization != 0)
    # under autocast the model runs in bf16/fp16, the loss itself in float32 (as the authors cast)
    with torch.autocast(sal.device.type, enabled=False):
        per_level = harmonization_terms(sal, human_maps.to(sal.device), tokens.to(sal.device),
                                        levels)
        harm = per_level.mean()
        task = F.cross_entropy(logits.float(), labels.long(), label_smoothing=label_smoothing)
        weights = l2_term(p for _, p in decayed_parameters(model)).to(task.device)
    total = task + lambda_harmonization * harm + lambda_weights * weights
    return HarmonizerLoss(total, task, harm, weights, per_level, logits, sal)
