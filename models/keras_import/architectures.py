"""The Keras architectures that can be imported: names, file layouts and converters, as data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.keras_import import efficientnet_b0, resnet50v2, vgg16, vit_b16
from models.keras_import.h5file import KerasFile
from models.keras_import.weight_mapping import WeightMap


@dataclass(frozen=True)
class Architecture:
    """One importable network: how it is saved, how to build the PyTorch module and fill it."""

    name: str                 # the --arch value
    zoo_name: str             # its name in models.zoo
    released_file: str        # the authors' file name (paradigm §3)
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
    from suite.errors import InputError

    if name not in ARCHITECTURES:
        raise InputError(f"unknown Keras architecture {name!r}; use one of "
                         f"{', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def guess_hint(keras: KerasFile, arch: str) -> str:
    """' It looks like X: pass --arch X.' when another architecture's layer names fit the file
    better."""
    names = set(keras.weights)
    scores = {}
    for name, spec in ARCHITECTURES.items():
        expected = set(spec.expected_layers())
        scores[name] = len(names & expected) / max(len(names | expected), 1)
    best = max(scores, key=scores.get)
    if best != arch and scores[best] > 0.9:
        return f". It looks like a Keras {best}: pass --arch {best}"
    return (". Give the file of the architecture named by --arch (the authors' "
            "vgg16/resnet50v2/efficientnetB0/vit-b16 _harmonized.h5), complete and unmodified")
