"""vit_keras ``vit_b16(image_size=224, activation='linear', include_top=True)`` → timm
``vit_base_patch16_224``.

The two compute the same function: 16×16 patch embedding flattened row-major, class token
first, learned position embedding, 12 pre-norm blocks (LayerNorm epsilon 1e-6, 12 heads,
exact-erf GELU MLP of 3072), final LayerNorm, class-token readout, linear head. vit_keras
keeps query/key/value as three Dense layers; timm fuses them into one ``qkv`` projection.
"""

from __future__ import annotations

import numpy as np
import torch

from models.keras_import.weight_mapping import WeightMap, conv_kernel, dense_kernel

DEPTH = 12
EPS = 1e-6


def expected_layers() -> list[str]:
    """Keras layers that carry weights."""
    blocks = [f"Transformer/encoderblock_{i}" for i in range(DEPTH)]
    return ["embedding", "class_token", "Transformer/posembed_input", *blocks,
            "Transformer/encoder_norm", "head"]


def build() -> torch.nn.Module:
    """timm's ViT-B/16 at 224, untrained, 1000 classes."""
    import timm

    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=1000)


def to_state(weights: WeightMap, module: torch.nn.Module) -> None:
    """Fill ``weights.state`` from the Keras layers."""
    kernel = weights.get("embedding", "kernel")
    weights.put("patch_embed.proj.weight", None if kernel is None else conv_kernel(kernel))
    weights.put("patch_embed.proj.bias", weights.get("embedding", "bias"))
    weights.put("cls_token", weights.get("class_token", "cls"))
    weights.put("pos_embed", weights.get("Transformer/posembed_input", "pos_embedding"))
    for i in range(DEPTH):
        layer, at = f"Transformer/encoderblock_{i}", f"blocks.{i}"
        weights.layer_norm(layer, f"{at}.norm1", "LayerNorm_0")
        parts = [(weights.get(layer, f"MultiHeadDotProductAttention_1/{p}/kernel"),
                  weights.get(layer, f"MultiHeadDotProductAttention_1/{p}/bias"))
                 for p in ("query", "key", "value")]
        if all(k is not None and b is not None for k, b in parts):
            # timm splits its fused qkv output as [q; k; v], each head-major like vit_keras.
            weights.put(f"{at}.attn.qkv.weight",
                        np.concatenate([dense_kernel(k) for k, _ in parts]))
            weights.put(f"{at}.attn.qkv.bias", np.concatenate([b for _, b in parts]))
        weights.dense(layer, f"{at}.attn.proj", "MultiHeadDotProductAttention_1/out")
        weights.layer_norm(layer, f"{at}.norm2", "LayerNorm_2")
        weights.dense(layer, f"{at}.mlp.fc1", "Dense_0")
        weights.dense(layer, f"{at}.mlp.fc2", "Dense_1")
    weights.layer_norm("Transformer/encoder_norm", "norm")
    weights.check_epsilon("Transformer/encoder_norm", EPS)
    weights.dense("head", "head")
