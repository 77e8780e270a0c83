"""The Keras architectures that can be imported: names, file layouts and converters, as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.keras_import import efficientnet_b0, resnet50v2, vgg16, vit_b16
from models.keras_import.weight_mapping import WeightMap


@dataclass(frozen=True)
class Architecture:
    """One importable network: how it is saved, how to build the PyTorch module and fill it."""

    name: str                 # the --arch value
    zoo_name: str             # its name in models.zoo
    released_file: str        # the authors' file name (SPEC §3)
    layout: str               # "model": whole saved model; "weights": weights-only
    keras_source: str         # which Keras code builds it
    head_layer: str           # the final Dense, whose activation the module leaves out
    build: Callable[[], torch.nn.Module]
    to_state: Callable[[WeightMap, torch.nn.Module], None]
    expected_layers: Callable[[], list[str]]


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("vgg16", "harmonized_vgg16", "vgg16_harmonized.h5", "model",
                 "keras.applications.VGG16", "predictions",
                 vgg16.build, vgg16.to_state, vgg16.expected_layers),
    Architecture("resnet50v2", "harmonized_resnet50v2", "resnet50v2_harmonized.h5", "model",
                 "keras.applications.ResNet50V2", "predictions",
                 resnet50v2.build, resnet50v2.to_state, resnet50v2.expected_layers),
    Architecture("efficientnetb0", "harmonized_efficientnetb0", "efficientnetB0_harmonized.h5",
                 "model", "efficientnet (PyPI, qubvel) 1.1.1 EfficientNetB0", "probs",
                 efficientnet_b0.build, efficientnet_b0.to_state, efficientnet_b0.expected_layers),
    Architecture("vit-b16", "harmonized_vit_b16", "vit-b16_harmonized.h5", "weights",
                 "vit_keras.vit.vit_b16(image_size=224, activation='linear', include_top=True)",
                 "head", vit_b16.build, vit_b16.to_state, vit_b16.expected_layers),
)}


def architecture(name: str) -> Architecture:
    """The Architecture called ``name``, or an InputError listing the known ones."""
    from stimuli.errors import InputError

    if name not in ARCHITECTURES:
        raise InputError(f"unknown Keras architecture {name!r}; use one of "
                         f"{', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]
