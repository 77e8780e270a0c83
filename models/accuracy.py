"""``python -m models accuracy``: ImageNet top-1 (and animal/non-animal) accuracy on a labelled
image set.

Measured with each model's own evaluation transform (shorter side to ``resize``, center
crop), the protocol ImageNet top-1 is reported with. ``--out X.csv`` writes the
model-accuracy table ``python -m analysis report --model-accuracy`` reads
(``ACCURACY_CSV_COLUMNS``, one row per model and decision rule, ``model_name`` spelled as
``models observe`` spells it in the trials); any other ``--out`` name gets JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from experiment.schema import read_rows
from models.cli_options import add_model_options, model_names, models_from_args, weights_inputs
from models.decision import DEFAULT_RULE, check_rule, observer_name
from models.observe import model_logits
from models.zoo import ZooModel
from stimuli.schema import ANIMAL_CLASS_MAX
from suite.atomic import atomic_write_text
from suite.cli_types import list_item
from suite.errors import InputError
from suite.outputs import check_output_file
from suite.provenance import provenance

#: The model-accuracy CSV (``analysis report --model-accuracy`` needs the first three).
ACCURACY_CSV_COLUMNS = ("model_name", "top1", "harmonized", "top5", "animal_correct",
                        "n_images", "images")


def is_harmonized(model: str) -> bool:
    """True for a network trained with the harmonizer loss: the zoo's ``harmonized…`` names."""
    return model.startswith("harmonized")


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of one model on one labelled set; fractions in [0, 1]."""

    model: str
    n_images: int
    top1: float
    top5: float
    animal_correct: float   # animal/non-animal right under the top-1 rule


def read_labelled_set(images: str | Path) -> tuple[list[Path], torch.Tensor]:
    """Image paths and (N,) ImageNet class indices from a manifest CSV (or a folder holding
    manifest.csv)."""
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
        raise InputError(f"{manifest}: class_index must be an integer 0–999 on every row "
                         f"({err})") from err
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


def accuracy_csv(results: Sequence[Accuracy], rule: str | Sequence[str] = DEFAULT_RULE,
                 images: str | Path = "") -> str:
    """The model-accuracy CSV text: one row per model and rule, ``model_name`` as in the trials.

    ``models observe`` names a model's trial rows by zoo name and decision rule
    (``efficientnet_lite0_imagenet[mass]``); top-1 does not depend on the rule, so each
    rule's name gets the same figures and the report can join accuracy to every curve.
    """
    rules = [rule] if isinstance(rule, str) else list(rule)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ACCURACY_CSV_COLUMNS)
    for r in results:
        for each in rules:
            writer.writerow([observer_name(r.model, check_rule(each)), f"{r.top1:.6f}",
                             int(is_harmonized(r.model)), f"{r.top5:.6f}",
                             f"{r.animal_correct:.6f}", r.n_images, str(images)])
    return buf.getvalue()


def write_accuracy_csv(path: str | Path, results: Sequence[Accuracy],
                       rule: str | Sequence[str] = DEFAULT_RULE, images: str | Path = "") -> Path:
    """Write ``accuracy_csv`` atomically to ``path``; returns it."""
    return atomic_write_text(path, accuracy_csv(results, rule, images))


def _labelled_inputs(images: Path) -> list[Path]:
    manifest = images / "manifest.csv" if images.is_dir() else images
    inputs = [manifest]
    if manifest.is_file():
        try:
            inputs += [manifest.parent / r["file"] for r in read_rows(manifest, required=("file",))]
        except InputError:
            pass  # read_labelled_set reports a malformed manifest when it is read
    return inputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser, several=True)
    parser.add_argument("--images", required=True, type=Path,
                        help="manifest CSV (file, class_index) or a folder with manifest.csv")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file for the figures (optional): X.csv = the model-accuracy "
                             "table that 'python -m analysis report --model-accuracy' reads; "
                             "other names: JSON")
    parser.add_argument("--rule", nargs="+", type=list_item(), default=[DEFAULT_RULE],
                        metavar="RULE",
                        help="decision rule(s) the models were observed with, separated by "
                             "spaces (names the CSV rows as the trials name them; default top1)")


def main(args: argparse.Namespace) -> int:
    names = model_names(args)
    rules = [check_rule(r) for r in args.rule]
    if args.out is not None:
        check_output_file(args.out, inputs=[*_labelled_inputs(args.images), *weights_inputs(args)])
    results = []
    for model in models_from_args(args):
        r = accuracy(model, args.images, args.batch_size)
        results.append(r)
        print(f"{r.model}: top-1 {r.top1:.2%}  top-5 {r.top5:.2%}  "
              f"animal/non-animal {r.animal_correct:.2%}  (n={r.n_images})")
    if args.out is not None and args.out.suffix.lower() == ".csv":
        write_accuracy_csv(args.out, results, rules, args.images)
        print(f"wrote {args.out} (for python -m analysis report --model-accuracy)")
    elif args.out is not None:
        record = {"results": [asdict(r) for r in results],
                  "provenance": provenance(models=names, images=str(args.images),
                                           weights=args.weights)}
        atomic_write_text(args.out, json.dumps(record, indent=2))
    return 0
