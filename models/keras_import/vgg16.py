"""keras.applications VGG16 → timm ``vgg16`` (the same function at 224×224)."""

from __future__ import annotations

import torch

from models.keras_import.weight_mapping import WeightMap

# Keras layer names, in the order of timm's convolutions.
CONV_LAYERS = tuple(f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                    for c in range(1, n + 1))
DENSE_LAYERS = ("fc1", "fc2", "predictions")


def expected_layers() -> list[str]:
    """Keras layers that carry weights."""
    return [*CONV_LAYERS, *DENSE_LAYERS]


def build() -> torch.nn.Module:
    """timm's VGG16: 3×3 'same' convolutions (symmetric padding 1), max-pool 2, then a 7×7
    ConvMlp."""
    import timm

    return timm.create_model("vgg16", pretrained=False, num_classes=1000)


def to_state(weights: WeightMap, module: torch.nn.Module) -> None:
    """Fill ``weights.state`` from the Keras layers."""
    convs = [name for name, m in module.features.named_children()
             if isinstance(m, torch.nn.Conv2d)]
    for keras_name, index in zip(CONV_LAYERS, convs, strict=True):
        weights.conv(keras_name, f"features.{index}", bias=True)
    # Keras flattens the 7×7×512 map channels-last (h, w, c); timm's fc1 is a 7×7 convolution
    # over the channels-first map, so each Dense row is unflattened to (7, 7, 512) first.
    fc1 = weights.get("fc1", "kernel")
    if fc1 is not None and fc1.shape[0] == 7 * 7 * 512:  # other widths are reported by finish()
        fc1 = fc1.reshape(7, 7, 512, fc1.shape[1]).transpose(3, 2, 0, 1)
    weights.put("pre_logits.fc1.weight", fc1)
    weights.put("pre_logits.fc1.bias", weights.get("fc1", "bias"))
    fc2 = weights.get("fc2", "kernel")
    weights.put("pre_logits.fc2.weight", None if fc2 is None else fc2.T[:, :, None, None])
    weights.put("pre_logits.fc2.bias", weights.get("fc2", "bias"))
    weights.dense("predictions", "head.fc")

