"""``python -m models list``: the registered models, what each needs, and the timm architectures."""

from __future__ import annotations

import argparse

from models.zoo import available


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timm", metavar="PATTERN", default=None,
                        help="also list timm architectures matching PATTERN (e.g. 'vit_*')")


def main(args: argparse.Namespace) -> int:
    entries = available()
    width = max((len(e.name) for e in entries), default=4)
    print(f"{'name':<{width}}  {'weights':<13}  description")
    for e in entries:
        p = e.preprocessing
        print(f"{e.name:<{width}}  {e.weights_needed:<13}  {e.description} "
              f"[{p.input_size}px, {p.interpolation}]")
    if args.timm:
        import timm

        names = timm.list_models(args.timm)
        with_weights = set(timm.list_models(args.timm, pretrained=True))
        print(f"\ntimm architectures matching {args.timm!r} ({len(names)}); "
              "weights='timm' downloads, "
              "weights=PATH loads a local .pth/.safetensors:")
        for n in names:
            tags = sorted(t for t in with_weights if t.split(".")[0] == n)
            print(f"  {n}" + (f"  (pretrained tags: {', '.join(tags)})" if tags
                              else "  (no pretrained weights)"))
    else:
        print("\nAny timm architecture also works (weights='timm' downloads; weights=PATH loads a "
              "local file); 'python -m models list --timm PATTERN' lists them.")
    return 0
