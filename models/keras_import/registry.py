"""Registers the converted Keras networks in the zoo as ``harmonized_<arch>`` (weights: a local
file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from models.keras_import.architectures import ARCHITECTURES, Architecture
from models.preprocessing import Preprocessing
from models.zoo import RANDOM_WEIGHTS, register
from suite.errors import InputError

# The released models take /255 then ImageNet mean/std (paradigm §3) at 224×224. Resize 256 +
# center crop is our choice for ImageNet-style evaluation; stimuli are shown whole by the
# observers regardless (models.preprocessing).
HARMONIZED_PREPROCESSING = Preprocessing(input_size=224, resize=256, crop="center",
                                         interpolation="bilinear",
                                         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _builder(arch: Architecture) -> Callable[[str | Path | None], torch.nn.Module]:
    def build(weights: str | Path | None) -> torch.nn.Module:
        from models.keras_import.convert import load_converted

        if weights is None:
            raise InputError(
                f"{arch.zoo_name} needs a local file: download the authors' {arch.released_file}, "
                f"convert it with 'python -m models import-keras {arch.released_file} --arch "
                f"{arch.name} --out {Path(arch.released_file).stem}.safetensors', then pass "
                "weights=<that .safetensors>")
        if weights == RANDOM_WEIGHTS:
            return arch.build()
        return load_converted(weights, arch.name)

    return build


for _arch in ARCHITECTURES.values():
    register(_arch.zoo_name, _builder(_arch), HARMONIZED_PREPROCESSING,
             f"the authors' harmonized {_arch.name} ({_arch.keras_source}), imported from "
             f"{_arch.released_file}", "local file")
