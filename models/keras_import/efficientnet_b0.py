"""The ``efficientnet`` package's Keras EfficientNetB0 → timm ``tf_efficientnet_b0``.

timm's ``tf_`` variant is exactly the TensorFlow network: "same" padding computed as
TensorFlow does (stride 2 pads one more row/column at the bottom/right), batch-norm
epsilon 1e-3, swish (SiLU), squeeze-excitation with a swish reduce and a sigmoid gate.
Keras's drop-connect (FixedDropout) and top dropout are inactive at inference, as in timm.
keras.applications' EfficientNetB0 is a different file (built-in Rescaling/Normalization
layers, a 'predictions' head) and is refused with that reason.
"""

from __future__ import annotations

import string

import torch

from models.keras_import.weight_mapping import WeightMap

EPS = 1e-3
REPEATS = (1, 2, 2, 3, 3, 4, 1)   # EfficientNet-B0 blocks per stage (depth coefficient 1.0)


def _blocks() -> list[tuple[str, int, int]]:
    """(Keras prefix, timm stage, index in stage) for every block."""
    return [(f"block{s + 1}{string.ascii_lowercase[j]}_", s, j)
            for s, n in enumerate(REPEATS) for j in range(n)]


def expected_layers() -> list[str]:
    """Keras layers that carry weights."""
    names = ["stem_conv", "stem_bn"]
    for prefix, stage, _ in _blocks():
        expand = [f"{prefix}expand_conv", f"{prefix}expand_bn"] if stage > 0 else []
        names += [*expand, f"{prefix}dwconv", f"{prefix}bn", f"{prefix}se_reduce",
                  f"{prefix}se_expand", f"{prefix}project_conv", f"{prefix}project_bn"]
    return [*names, "top_conv", "top_bn", "probs"]


def build() -> torch.nn.Module:
    """timm's tf_efficientnet_b0, untrained, 1000 classes."""
    import timm

    return timm.create_model("tf_efficientnet_b0", pretrained=False, num_classes=1000)


def to_state(weights: WeightMap, module: torch.nn.Module) -> None:
    """Fill ``weights.state`` from the Keras layers."""
    if any(name.startswith("normalization") for name in weights.keras.weights):
        weights.missing.append("the file has a Normalization layer: it is keras.applications' "
                               "EfficientNetB0 (built-in preprocessing), not the `efficientnet` "
                               "package's model the authors released")
    weights.conv("stem_conv", "conv_stem", bias=False)
    _bn(weights, "stem_bn", "bn1")
    for prefix, stage, j in _blocks():
        at = f"blocks.{stage}.{j}"
        # Stage 1 has no expansion (timm's DepthwiseSeparableConv: bn1, conv_pw, bn2);
        # later stages are inverted residuals (conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3).
        if stage == 0:
            dw_bn, project, project_bn = "bn1", "conv_pw", "bn2"
        else:
            weights.conv(f"{prefix}expand_conv", f"{at}.conv_pw", bias=False)
            _bn(weights, f"{prefix}expand_bn", f"{at}.bn1")
            dw_bn, project, project_bn = "bn2", "conv_pwl", "bn3"
        weights.depthwise(f"{prefix}dwconv", f"{at}.conv_dw")
        _bn(weights, f"{prefix}bn", f"{at}.{dw_bn}")
        weights.conv(f"{prefix}se_reduce", f"{at}.se.conv_reduce", bias=True)
        weights.conv(f"{prefix}se_expand", f"{at}.se.conv_expand", bias=True)
        weights.conv(f"{prefix}project_conv", f"{at}.{project}", bias=False)
        _bn(weights, f"{prefix}project_bn", f"{at}.{project_bn}")
    weights.conv("top_conv", "conv_head", bias=False)
    _bn(weights, "top_bn", "bn2")
    weights.dense("probs", "classifier")


def _bn(weights: WeightMap, layer: str, prefix: str) -> None:
    weights.batch_norm(layer, prefix)
    weights.check_epsilon(layer, EPS)
