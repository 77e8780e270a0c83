"""The model options every ``python -m models`` command shares, written once.

``--model`` (one name, or several separated by spaces), ``--weights``, ``--device`` and
``--batch-size`` mean the same thing and are checked the same way in ``observe``,
``accuracy``, ``where``, ``export-partner`` and ``harmonize`` (docs/commands.md, "The
command line"). ``models_from_args`` builds the networks the options name, one at a time.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from models.zoo import ZooModel, create, default_device, device_argument
from suite.cli_types import int_at_least, list_item
from suite.errors import InputError

#: ``--weights`` values that name no file.
NAMED_WEIGHTS = ("timm", "pretrained", "random")

BATCH_HELP = "images per forward pass (default: 64 on a GPU, 8 on the CPU)"


def add_model_options(parser: argparse.ArgumentParser, several: bool, *,
                      default_model: str | None = None, device: bool = True,
                      batch_size: bool = True, batch_size_default: int | None = None,
                      batch_size_help: str = BATCH_HELP) -> None:
    """Add ``--model``, ``--weights`` and (unless turned off) ``--device``, ``--batch-size``.

    ``several``: ``--model`` takes one or more names (``nargs="+"``), else exactly one.
    Without ``default_model`` the option is required.
    """
    group = parser.add_argument_group("model")
    model_help = ("zoo or timm name(s), separated by spaces" if several
                  else "zoo name or timm architecture")
    if default_model is not None:
        model_help += f" (default {default_model})"
    group.add_argument("--model", required=default_model is None,
                       default=[default_model] if several and default_model else default_model,
                       nargs="+" if several else None, type=list_item() if several else str,
                       metavar="NAME", help=model_help)
    group.add_argument("--weights", default=None, metavar="W",
                       help="weights for " + ("a single --model" if several else "--model")
                            + ": a local .pth/.safetensors file, 'timm' or 'random'")
    if device:
        group.add_argument("--device", type=device_argument, default=default_device(),
                           help="cpu, cuda or cuda:N (default: cuda when a GPU is usable)")
    if batch_size:
        group.add_argument("--batch-size", type=int_at_least(1), default=batch_size_default,
                           help=batch_size_help)


def model_names(args: argparse.Namespace) -> list[str]:
    """The ``--model`` names, checked: at least one, ``--weights`` only with a single model."""
    names = [args.model] if isinstance(args.model, str) else list(args.model)
    if not names or not all(n.strip() for n in names):
        raise InputError("--model: give one or more model names")
    if getattr(args, "weights", None) is not None and len(names) != 1:
        raise InputError("--weights applies to one model; run the command once per weights file")
    return names


def weights_inputs(args: argparse.Namespace) -> list[Path]:
    """The ``--weights`` file as an input an ``--out`` must not overwrite (none for a name)."""
    weights = getattr(args, "weights", None)
    return [Path(weights)] if weights not in (None, "", *NAMED_WEIGHTS) else []


def models_from_args(args: argparse.Namespace) -> Iterator[ZooModel]:
    """Each ``--model`` built with ``--weights`` on ``--device``, one at a time (so only
    one network is in memory while a command works through several)."""
    device = getattr(args, "device", "cpu")
    for name in model_names(args):
        yield create(name, weights=args.weights, device=device)
