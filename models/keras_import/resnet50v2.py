"""keras.applications ResNet50V2 as a PyTorch module, with Keras's stride placement and padding.

It differs from timm's ``resnetv2_50`` where Keras differs: the stride-2 step sits in the
*last* block of each stack (its shortcut is a 1×1 max-pool with stride 2, i.e. subsampling),
the stem max-pool pads with zeros (ZeroPadding2D), not −∞, the stem convolution has a bias,
and every batch norm uses epsilon 1.001e-5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.keras_import.weight_mapping import WeightMap

EPS = 1.001e-5
STACKS = ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1))   # filters, blocks, last stride


class PreactBlock(nn.Module):
    """Keras ``block2``: BN-ReLU pre-activation, 1×1 → 3×3 (stride here) → 1×1, plus a shortcut."""

    def __init__(self, cin: int, filters: int, stride: int, conv_shortcut: bool):
        super().__init__()
        self.stride = stride
        self.preact_bn = nn.BatchNorm2d(cin, eps=EPS)
        self.shortcut = nn.Conv2d(cin, 4 * filters, 1, stride) if conv_shortcut else None
        self.conv1 = nn.Conv2d(cin, filters, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters, eps=EPS)
        # ZeroPadding2D((1, 1)) then a 'valid' 3×3 is symmetric padding 1, stride 1 or 2.
        self.conv2 = nn.Conv2d(filters, filters, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters, eps=EPS)
        self.conv3 = nn.Conv2d(filters, 4 * filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = F.relu(self.preact_bn(x))
        if self.shortcut is not None:
            shortcut = self.shortcut(preact)
        else:
            # Keras: MaxPooling2D(1, strides=stride) of the *raw* input, i.e. plain subsampling.
            shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        y = F.relu(self.bn1(self.conv1(preact)))
        y = F.relu(self.bn2(self.conv2(y)))
        return shortcut + self.conv3(y)


class KerasResNet50V2(nn.Module):
    """ResNet50V2 with the layer arithmetic of keras.applications; input NCHW, output logits."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3)   # ZeroPadding2D(3) + valid 7×7/2
        blocks, cin = [], 64
        for filters, count, last_stride in STACKS:
            for i in range(count):
                stride = last_stride if i == count - 1 else 1
                blocks.append(PreactBlock(cin, filters, stride, conv_shortcut=i == 0))
                cin = 4 * filters
        self.blocks = nn.Sequential(*blocks)
        self.post_bn = nn.BatchNorm2d(cin, eps=EPS)
        self.fc = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalized images → (N, 2048, H/32, W/32) after the final BN-ReLU."""
        x = self.conv1(x)
        # The stem has no activation before this pool, so zero padding (Keras) ≠ −∞ padding.
        x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)
        return F.relu(self.post_bn(self.blocks(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean(dim=(2, 3)))


def _block_names() -> list[tuple[str, int]]:
    return [(f"conv{s + 2}_block{i + 1}", i) for s, (_, count, _) in enumerate(STACKS)
            for i in range(count)]


def expected_layers() -> list[str]:
    """Keras layers that carry weights."""
    names = ["conv1_conv"]
    for name, i in _block_names():
        names += [f"{name}_preact_bn", *([f"{name}_0_conv"] if i == 0 else []),
                  f"{name}_1_conv", f"{name}_1_bn", f"{name}_2_conv", f"{name}_2_bn",
                  f"{name}_3_conv"]
    return [*names, "post_bn", "predictions"]


def build() -> torch.nn.Module:
    """An untrained KerasResNet50V2 (1000 classes)."""
    return KerasResNet50V2()


def to_state(weights: WeightMap, module: torch.nn.Module) -> None:
    """Fill ``weights.state`` from the Keras layers."""
    weights.conv("conv1_conv", "conv1", bias=True)
    for index, (name, i) in enumerate(_block_names()):
        prefix = f"blocks.{index}"
        weights.batch_norm(f"{name}_preact_bn", f"{prefix}.preact_bn")
        if i == 0:
            weights.conv(f"{name}_0_conv", f"{prefix}.shortcut", bias=True)
        weights.conv(f"{name}_1_conv", f"{prefix}.conv1", bias=False)
        weights.batch_norm(f"{name}_1_bn", f"{prefix}.bn1")
        weights.conv(f"{name}_2_conv", f"{prefix}.conv2", bias=False)
        weights.batch_norm(f"{name}_2_bn", f"{prefix}.bn2")
        weights.conv(f"{name}_3_conv", f"{prefix}.conv3", bias=True)
        for bn in ("preact_bn", "1_bn", "2_bn"):
            weights.check_epsilon(f"{name}_{bn}", EPS)
    weights.batch_norm("post_bn", "post_bn")
    weights.check_epsilon("post_bn", EPS)
    weights.dense("predictions", "fc")
