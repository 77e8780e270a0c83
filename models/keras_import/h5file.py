"""Read a Keras 2 ``.h5`` file with h5py alone: its layer weights and, for whole saved models,
its config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from suite.errors import InputError


@dataclass
class KerasFile:
    """The weights of every layer (layer → variable name → array) and the model config if saved."""

    path: Path
    layout: str                                    # "model" (whole saved model) or "weights"
    weights: dict[str, dict[str, np.ndarray]]      # variable names minus the layer prefix and ":0"
    config: dict | None = None                     # the parsed ``model_config`` JSON
    layer_configs: dict[str, dict] = field(default_factory=dict)

    def layer_class(self, layer: str) -> str | None:
        """The Keras class name of a layer, when the file carries a config."""
        entry = self.layer_configs.get(layer)
        return entry.get("class_name") if entry else None

    def layer_config(self, layer: str) -> dict:
        """A layer's config dict (empty for weights-only files)."""
        entry = self.layer_configs.get(layer)
        return dict(entry.get("config", {})) if entry else {}


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _variable_name(layer: str, weight_name: str) -> str:
    """'block1_conv1/kernel:0' → 'kernel'; nested names keep their inner path."""
    name = weight_name[:-2] if weight_name.endswith(":0") else weight_name
    prefix = layer + "/"
    # Models rebuilt inside another scope store 'outer/layer/…'; cut at the layer's own name.
    cut = name.rfind(prefix) if not name.startswith(prefix) else 0
    return name[cut + len(prefix):] if cut >= 0 else name.rsplit("/", 1)[-1]


def _read_group(group, path: Path) -> dict[str, dict[str, np.ndarray]]:
    if "layer_names" not in group.attrs:
        raise InputError(f"{path}: no 'layer_names' attribute in the HDF5 file; "
                         "this is not a Keras "
                         "2 .h5 save (model.save('x.h5') or model.save_weights('x.h5')). "
                         "Re-save it "
                         "with TensorFlow 2 / Keras 2 in the HDF5 format")
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in (_decode(n) for n in group.attrs["layer_names"]):
        if layer not in group:
            raise InputError(f"{path}: layer {layer!r} is listed but its weights are absent; the "
                             "file is truncated or damaged: download it again")
        sub = group[layer]
        names = [_decode(n) for n in sub.attrs.get("weight_names", [])]
        if names:
            out[layer] = {_variable_name(layer, n): np.asarray(sub[n], dtype=np.float32)
                          for n in names}
    return out


def _layer_configs(config: dict) -> dict[str, dict]:
    layers = config.get("config", {}).get("layers", [])
    return {entry.get("config", {}).get("name", entry.get("name")): entry for entry in layers}


def read_keras_h5(path: str | Path) -> KerasFile:
    """Open a Keras 2 whole-model or weights-only ``.h5`` file and read every weight into memory."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of the downloaded Keras .h5 file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: not an HDF5 file ({err}); give a Keras .h5 file "
                         "(a .keras zip or a SavedModel folder is not supported)") from err
    with handle:
        if "model_weights" in handle:
            raw = handle.attrs.get("model_config")
            config = json.loads(_decode(raw)) if raw is not None else None
            weights = _read_group(handle["model_weights"], path)
            return KerasFile(path, "model", weights, config,
                             _layer_configs(config) if config else {})
        return KerasFile(path, "weights", _read_group(handle, path))


