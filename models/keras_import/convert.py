"""Convert a Keras ``.h5`` into a PyTorch state dict, save it (safetensors + card), load it back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from models.keras_import.architectures import Architecture, architecture, guess_hint
from models.keras_import.h5file import KerasFile, read_keras_h5
from models.keras_import.weight_mapping import WeightMap
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.errors import InputError
from suite.provenance import file_sha256, provenance

FORMAT = "keras-import/1"
# What every converted module expects and returns (paradigm §3: the authors' preprocessing).
INPUT_CONTRACT = ("float32 (N, 3, H, W) RGB, channels first, scaled to [0, 1] (/255) then "
                  "normalized with ImageNet mean (0.485, 0.456, 0.406) "
                  "and std (0.229, 0.224, 0.225)")
OUTPUT_CONTRACT = "logits over the 1000 ImageNet classes (before any softmax the Keras head had)"


@dataclass
class Conversion:
    """A converted network: the module with its weights loaded, and the facts about its source."""

    arch: Architecture
    module: torch.nn.Module
    state: dict[str, torch.Tensor]
    source: Path
    source_sha256: str
    keras_head_activation: str | None   # None for weights-only files (no config)


def skeleton(arch: Architecture) -> torch.nn.Module:
    """The module with uninitialized storage: every tensor is overwritten by a strict load next.

    Random initialization of VGG16's 120 M dense weights alone takes ~25 s on two cores.
    """
    with torch.device("meta"):
        module = arch.build()
    module = module.to_empty(device="cpu")
    persistent = set(module.state_dict())
    transient = [name for name, _ in module.named_buffers() if name not in persistent]
    if transient:  # such buffers would stay uninitialized; none of the four has any
        raise RuntimeError(f"{arch.name} has non-persistent buffers {transient}")
    return module


def _head_activation(keras: KerasFile, arch: Architecture) -> str | None:
    return keras.layer_config(arch.head_layer).get("activation") if keras.config else None


def convert_keras(path: str | Path, arch_name: str) -> Conversion:
    """Read ``path`` (a Keras .h5 of ``arch_name``) and return the equivalent PyTorch module."""
    arch = architecture(arch_name)
    keras = read_keras_h5(path)
    if keras.layout != arch.layout:
        expected = "a whole saved model (model.save)" if arch.layout == "model" else \
            "a weights-only file (model.save_weights)"
        got = "a whole saved model" if keras.layout == "model" else "a weights-only file"
        raise InputError(f"{keras.path} is {got}, but the authors' {arch.name} "
                         f"({arch.released_file}) is {expected}; check --arch")
    module = skeleton(arch)
    mapping = WeightMap(keras, arch.name, hint=guess_hint)
    arch.to_state(mapping, module)
    state = mapping.finish(module)
    module.load_state_dict(state, strict=True)
    return Conversion(arch, module.eval(), state, keras.path, file_sha256(keras.path),
                      _head_activation(keras, arch))


def card_path(out: str | Path) -> Path:
    """The JSON card written beside a converted file: ``X.safetensors`` → ``X.json``."""
    return Path(out).with_suffix(".json")


def save_conversion(conversion: Conversion, out: str | Path) -> tuple[Path, Path]:
    """Write the safetensors file and its JSON card, each atomically; returns both paths."""
    from safetensors.torch import save

    out = Path(out)
    if out.suffix != ".safetensors":
        raise InputError(f"{out}: the output must end in .safetensors")
    metadata = {"format": FORMAT, "arch": conversion.arch.name,
                "source_sha256": conversion.source_sha256}
    # safetensors refuses tensors that share memory; the converted ones are independent copies.
    blob = save({k: v.contiguous() for k, v in conversion.state.items()}, metadata=metadata)
    atomic_write_bytes(out, blob)
    card = {
        **metadata,
        "zoo_name": conversion.arch.zoo_name,
        "source_file": conversion.source.name,
        "keras_source": conversion.arch.keras_source,
        "keras_head_activation": conversion.keras_head_activation,
        "input": INPUT_CONTRACT,
        "output": OUTPUT_CONTRACT,
        "provenance": provenance(source=str(conversion.source), arch=conversion.arch.name,
                                 out=str(out)),
    }
    card_file = atomic_write_text(card_path(out), json.dumps(card, indent=2) + "\n")
    return out, card_file


def load_converted(path: str | Path, arch_name: str) -> torch.nn.Module:
    """Build the ``arch_name`` module and load a file written by ``save_conversion`` into it."""
    from safetensors import safe_open

    from models.weights import load_strict, read_state_dict

    arch = architecture(arch_name)
    path = Path(path)
    if path.suffix == ".h5":
        raise InputError(f"{path} is the Keras file; convert it first: python -m models "
                         f"import-keras {path} --arch {arch.name} --out "
                         f"{path.with_suffix('.safetensors')}")
    state = read_state_dict(path)
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as fh:
            stored = (fh.metadata() or {}).get("arch")
        if stored is not None and stored != arch.name:
            raise InputError(f"{path} holds a converted {stored}, not a {arch.name}; use the zoo "
                             f"model {architecture(stored).zoo_name}")
    return load_strict(skeleton(arch), state, str(path), arch.zoo_name).eval()
