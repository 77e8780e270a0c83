"""``python -m models accuracy``: ImageNet top-1 (and animal/non-animal) accuracy on a labelled image set.

Measured with each model's own evaluation transform (shorter side to ``resize``, center
crop), the protocol ImageNet top-1 is reported with.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from experiment.schema import read_rows
from models.observe import model_logits
from models.zoo import ZooModel, create
from stimuli.atomic import atomic_write_text
from stimuli.errors import InputError
from stimuli.provenance import provenance
from stimuli.schema import ANIMAL_CLASS_MAX


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of one model on one labelled set; fractions in [0, 1]."""

    model: str
    n_images: int
    top1: float
    top5: float
    animal_correct: float   # animal/non-animal right under the top-1 rule


def read_labelled_set(images: str | Path) -> tuple[list[Path], torch.Tensor]:
    """Image paths and (N,) ImageNet class indices from a manifest CSV (or a folder holding manifest.csv)."""
    manifest = Path(images)
    if manifest.is_dir():
        manifest = manifest / "manifest.csv"
    if not manifest.is_file():
        raise InputError(f"{manifest}: not found; give a CSV with columns file, class_index "
                         "(or a folder holding one named manifest.csv)")
    rows = read_rows(manifest, required=("file", "class_index"))
    try:
        labels = torch.tensor([int(r["class_index"]) for r in rows])
    except ValueError as err:
        raise InputError(f"{manifest}: class_index must be an integer 0–999 on every row ({err})") from err
    if len(rows) == 0 or labels.min() < 0 or labels.max() > 999:
        raise InputError(f"{manifest}: needs at least one row and class_index in 0–999")
    return [manifest.parent / r["file"] for r in rows], labels


def accuracy(model: ZooModel, images: str | Path, batch_size: int | None = None,
             progress: bool = True) -> Accuracy:
    """Top-1, top-5 and animal/non-animal accuracy of ``model`` on a labelled set."""
    paths, labels = read_labelled_set(images)
    logits = model_logits(model, paths, batch_size, prep=model.preprocessing, progress=progress)
    top5 = logits.topk(5, dim=1).indices
    top1 = top5[:, 0]
    animal_ok = (top1 <= ANIMAL_CLASS_MAX) == (labels <= ANIMAL_CLASS_MAX)
    return Accuracy(model=model.name, n_images=len(paths),
                    top1=float((top1 == labels).float().mean()),
                    top5=float((top5 == labels[:, None]).any(dim=1).float().mean()),
                    animal_correct=float(animal_ok.float().mean()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="comma-separated zoo or timm names")
    parser.add_argument("--images", required=True, type=Path,
                        help="manifest CSV (file, class_index) or a folder with manifest.csv")
    parser.add_argument("--weights", default=None, help="weights for a single --model")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per forward pass (default: 64 on a GPU, 8 on the CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def main(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.model.split(",") if n.strip()]
    if args.weights is not None and len(names) != 1:
        raise InputError("--weights applies to one model; run accuracy once per weights file")
    results = []
    for name in names:
        model = create(name, weights=args.weights, device=args.device)
        r = accuracy(model, args.images, args.batch_size)
        results.append(asdict(r))
        print(f"{r.model}: top-1 {r.top1:.2%}  top-5 {r.top5:.2%}  "
              f"animal/non-animal {r.animal_correct:.2%}  (n={r.n_images})")
    if args.out:
        record = {"results": results,
                  "provenance": provenance(models=names, images=str(args.images), weights=args.weights)}
        atomic_write_text(args.out, json.dumps(record, indent=2))
    return 0
