"""Decision rules that turn 1000-way ImageNet logits into an animal / non-animal response.

"top1" is the paper's rule (animal when the arg-max class is 0–397, paradigm §1); "mass" says
animal when the softmax probability summed over classes 0–397 exceeds one half. A
non-default rule is labelled in the observer's name: ``efficientnet_lite0_imagenet[mass]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from stimuli.schema import ANIMAL_CLASS_MAX
from suite.errors import InputError

IMAGENET_CLASSES = 1000
DEFAULT_RULE = "top1"


@dataclass(frozen=True)
class Decisions:
    """Per-image outcome of a rule; all tensors (N,) on the CPU."""

    p_animal: torch.Tensor   # float: softmax mass on classes 0–397
    top1: torch.Tensor       # long: arg-max class
    animal: torch.Tensor     # bool: the rule's response


def _top1(p_animal: torch.Tensor, top1: torch.Tensor) -> torch.Tensor:
    return top1 <= ANIMAL_CLASS_MAX


def _mass(p_animal: torch.Tensor, top1: torch.Tensor) -> torch.Tensor:
    return p_animal > 0.5


RULES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "top1": _top1, "mass": _mass}


def check_rule(rule: str) -> str:
    """Return ``rule`` if known, else raise InputError listing the rules."""
    if rule not in RULES:
        raise InputError(f"unknown decision rule {rule!r}; use one of: {', '.join(RULES)}")
    return rule


def decide(logits: torch.Tensor, rule: str = DEFAULT_RULE) -> Decisions:
    """(N, 1000) logits → Decisions under ``rule`` ("top1" or "mass")."""
    check_rule(rule)
    if logits.ndim != 2 or logits.shape[1] != IMAGENET_CLASSES:
        raise InputError(f"the animal/non-animal rules need (N, {IMAGENET_CLASSES}) "
                         "ImageNet logits, "
                         f"got shape {tuple(logits.shape)}; use a model with an ImageNet-1k head")
    logits = logits.detach().float().cpu()
    p_animal = torch.softmax(logits, dim=1)[:, :ANIMAL_CLASS_MAX + 1].sum(dim=1)
    top1 = logits.argmax(dim=1)
    return Decisions(p_animal=p_animal, top1=top1, animal=RULES[rule](p_animal, top1))


def observer_name(model_name: str, rule: str) -> str:
    """The name an observer's rows carry: the model name, with a non-default rule in brackets."""
    return model_name if check_rule(rule) == DEFAULT_RULE else f"{model_name}[{rule}]"
