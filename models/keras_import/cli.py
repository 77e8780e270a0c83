"""``python -m models import-keras FILE.h5 --arch ARCH --out FILE.safetensors``."""

from __future__ import annotations

import argparse

from models.keras_import.architectures import ARCHITECTURES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    parser.add_argument("h5", help="the Keras .h5 file (e.g. the authors' vgg16_harmonized.h5)")
    parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES),
                        help="the network the file holds")
    parser.add_argument("--out", required=True,
                        help="output file: the .safetensors weights (a JSON card is written "
                             "beside it)")


def main(args: argparse.Namespace) -> int:
    """Convert, write the safetensors file and its card, and say how to use it."""
    from models.keras_import.convert import convert_keras, save_conversion

    conversion = convert_keras(args.h5, args.arch)
    out, card = save_conversion(conversion, args.out)
    print(f"wrote {out} and {card}")
    if conversion.keras_head_activation not in (None, "linear"):
        print(f"note: the Keras head applied {conversion.keras_head_activation!r}; the converted "
              "module returns the logits before it (the top-1 class is unchanged)")
    print(f"use it with models.create({conversion.arch.zoo_name!r}, weights={str(out)!r})")
    return 0
