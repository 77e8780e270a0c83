"""Harmonized fine-tuning runs as zoo models: ``models.zoo.create("harmonized_ft:<run>")``.

A finished run folder holds ``model.safetensors`` (the timm module's state dict) and
``model_card.json`` (timm architecture, classes, preprocessing, base model, training
configuration, last metrics, provenance). Runs are found in the folders named by
``HARMONIZED_RUNS`` (os.pathsep-separated) and in ``runs/harmonize`` under the working
directory, the default ``--out`` parent; :func:`register_run` adds any other folder.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes

from models.preprocessing import Preprocessing
from models.weights import load_strict, read_state_dict
from models.zoo import register
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.errors import InputError
from suite.provenance import provenance

PREFIX = "harmonized_ft:"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
DEFAULT_ROOT = Path("runs") / "harmonize"
CARD_VERSION = 1


def timm_architecture(model: torch.nn.Module) -> str:
    """The timm architecture name a module was built as (its pretrained_cfg), or InputError."""
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    if not arch:
        raise InputError(f"{type(model).__name__} is not a timm model; the zoo can rebuild only "
                         "timm architectures, so fine-tune a timm model")
    return arch


def save_run(out_dir, model: torch.nn.Module, prep: Preprocessing, base: str, weights: str,
             config, metrics: dict) -> Path:
    """Write model.safetensors and model_card.json into ``out_dir`` (atomically); the card path."""
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out_dir / WEIGHTS_FILE, safetensors_bytes(state))
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    card = {
        "card_version": CARD_VERSION,
        "name": PREFIX + out_dir.name,
        "timm_architecture": timm_architecture(model),
        "num_classes": int(getattr(model, "num_classes", 0) or getattr(head, "out_features", 0)),
        "preprocessing": asdict(prep),
        "base_model": base,
        "base_weights": str(weights),
        "weights_file": WEIGHTS_FILE,
        "training": asdict(config) if config is not None else {},
        "final_metrics": metrics,
        "provenance": provenance(out=str(out_dir)),
    }
    path = atomic_write_text(out_dir / CARD_FILE, json.dumps(card, indent=2) + "\n")
    register_run(out_dir)
    return path


def read_card(run_dir) -> dict:
    """A run's model card, checked; InputError naming the file when it is unusable."""
    path = Path(run_dir) / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable model card ({err}); rerun the fine-tuning or "
                         "remove the folder") from err
    if not isinstance(card, dict):
        raise InputError(f"{path}: a model card is a JSON object, this is a {type(card).__name__}; "
                         "rerun the fine-tuning or remove the folder")
    missing = [k for k in ("timm_architecture", "num_classes", "preprocessing") if k not in card]
    if missing:
        raise InputError(f"{path}: model card lacks {', '.join(missing)}; it was not written by "
                         "python -m models harmonize")
    return card


_BUILDERS: dict[Path, object] = {}


def _builder(run_dir: Path):
    # one builder per folder, reading the card when called, so re-registering a folder is allowed
    if run_dir not in _BUILDERS:
        def build(weights: str | Path | None) -> torch.nn.Module:
            import timm

            card = read_card(run_dir)
            module = timm.create_model(card["timm_architecture"], pretrained=False,
                                       num_classes=int(card["num_classes"]))
            path = Path(weights) if weights not in (None, "") else run_dir / card.get(
                "weights_file", WEIGHTS_FILE)
            return load_strict(module, read_state_dict(path), str(path), card["timm_architecture"])

        _BUILDERS[run_dir] = build
    return _BUILDERS[run_dir]


def register_run(run_dir) -> str:
    """Register a finished run folder with the zoo; returns its name ``harmonized_ft:<folder>``."""
    run_dir = Path(run_dir).resolve()
    card = read_card(run_dir)
    name = PREFIX + run_dir.name
    try:
        prep = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in card["preprocessing"].items()})
    except (AttributeError, TypeError, ValueError) as err:
        raise InputError(f"{run_dir / CARD_FILE}: unusable preprocessing in the model card "
                         f"({err}); rerun the fine-tuning or remove the folder") from None
    try:
        register(name, _builder(run_dir), prep,
                 f"{card['timm_architecture']} fine-tuned with the harmonizer loss from "
                 f"{card.get('base_model', '?')} ({run_dir})", "local file")
    except ValueError as err:
        others = [d for d in _BUILDERS if d.name == run_dir.name and d != run_dir]
        raise InputError(f"{run_dir}: another run folder has the same name "
                         f"({others[0] if others else '?'}); "
                         "rename one of them, since the zoo name is "
                         "harmonized_ft:<folder name>") from err
    return name


def run_roots() -> list[Path]:
    """Folders searched for runs: HARMONIZED_RUNS entries, then ./runs/harmonize."""
    env = [Path(p) for p in os.environ.get("HARMONIZED_RUNS", "").split(os.pathsep) if p]
    return [*env, DEFAULT_ROOT]


def register_all() -> list[str]:
    """Register every finished run (a folder with a model card) under the run roots.

    A run whose card cannot be used is skipped with a warning naming it, so one broken
    folder does not take every other model of the zoo down with it (runs are scanned
    whenever the zoo is first used).
    """
    names = []
    for root in run_roots():
        if root.is_dir():
            for card in sorted(root.glob(f"*/{CARD_FILE}")):
                try:
                    names.append(register_run(card.parent))
                except InputError as err:
                    print(f"warning: skipping the harmonized run {card.parent}: {err}",
                          file=sys.stderr)
    return names


register_all()
