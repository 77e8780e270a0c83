"""Gradient saliency: how much each input pixel moves the logit of class y (paradigm §3).

Gradients are taken with respect to the model's input tensor (after normalization), as
the authors' code differentiates the network's input. Two reductions over RGB: the
"where" score uses |∂ logit_y/∂x| max over channels; the harmonizer uses the signed mean.
"""

from __future__ import annotations

import torch

from models.zoo import ZooModel


def input_gradients(module: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∂ logit_target / ∂ x for each image: (N, 3, H, W) from input (N, 3, H, W),
    target (N,) long."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = module(x)
        # images are independent in eval mode, so the gradient of the sum is each image's own
        # gradient
        picked = logits.gather(1, target.to(logits.device).view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(picked, x)
    return grad


def max_abs_saliency(grad: torch.Tensor) -> torch.Tensor:
    """|gradient| max over channels: (N, 3, H, W) → (N, H, W); the "where" saliency."""
    return grad.abs().amax(dim=1)


def signed_mean_saliency(grad: torch.Tensor) -> torch.Tensor:
    """Signed gradient averaged over channels: (N, 3, H, W) → (N, H, W); the harmonizer's
    saliency."""
    return grad.mean(dim=1)


def saliency_maps(model: ZooModel, x: torch.Tensor, target: torch.Tensor | None = None,
                  kind: str = "max_abs") -> tuple[torch.Tensor, torch.Tensor]:
    """Saliency (N, H, W) and the classes used (N,); target None = each image's top-1 class."""
    device = next(model.module.parameters()).device
    x = x.to(device)
    if target is None:
        with torch.no_grad():  # not inference_mode: the target index feeds the autograd graph below
            target = model.module(x).argmax(dim=1).cpu()
    grad = input_gradients(model.module, x, target)
    reduce = {"max_abs": max_abs_saliency, "signed_mean": signed_mean_saliency}
    if kind not in reduce:
        raise ValueError(f"kind must be one of {list(reduce)}, got {kind!r}")
    return reduce[kind](grad).detach().float().cpu(), target.cpu()
