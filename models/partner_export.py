"""The ClickMe game's partner as an ONNX file the page runs with onnxruntime-web.

``python -m models export-partner --model NAME --out partner.onnx`` writes one graph that
takes the revealed 256×256 image exactly as the page paints it — input ``image``,
``(1, 256, 256, 3)`` uint8 RGB, bubbles over grey — and returns ``logits`` ``(1, 1000)``:
the same preprocessing as ``python -m models observe`` (models/preprocessing.py, whole
image resized to the model's input with antialiasing, clamped, normalized), then the
network. The page only packs pixels.

The resize is a fixed linear map, separable into a row and a column matrix, so it is put
in the graph as two matrix products whose matrices are made by torch's own
``F.interpolate`` (the function ``observe`` calls) applied to an identity: no resize op
whose ONNX and browser kernels might round differently.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from models.cli_options import add_model_options, weights_inputs
from models.preprocessing import Preprocessing, whole_image
from models.zoo import create
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.errors import InputError
from suite.outputs import check_output_file
from suite.provenance import provenance

FRAME = 256                   # the game's image size (paradigm §6)
DEFAULT_MODEL = "efficientnet_lite0_imagenet"
OPSET = 17


def resize_matrix(size_in: int, size_out: int, mode: str) -> torch.Tensor:
    """(size_out, size_in) matrix R with R @ v = the 1-D antialiased resize ``observe`` applies."""
    eye = torch.eye(size_in, dtype=torch.float64)[None, None]   # (1, 1, in, in): columns = basis
    # resizing only the rows of the identity: the width stays size_in (a no-op resize)
    out = torch.nn.functional.interpolate(eye.float(), size=(size_out, size_in), mode=mode,
                                          align_corners=False, antialias=True)
    return out[0, 0].double().float()


class PartnerGraph(torch.nn.Module):
    """uint8 (N, 256, 256, 3) revealed image → the network's logits, as ``observe`` computes
    them."""

    def __init__(self, network: torch.nn.Module, prep: Preprocessing):
        super().__init__()
        prep = whole_image(prep)
        self.network = network
        r = resize_matrix(FRAME, prep.input_size, prep.interpolation)
        self.register_buffer("rows", r)
        self.register_buffer("cols", r.t().contiguous())
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1))
        self.resize = prep.input_size != FRAME

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float() / 255.0
        if self.resize:
            x = torch.matmul(torch.matmul(self.rows, x), self.cols)
        x = x.clamp(0.0, 1.0)
        return self.network((x - self.mean) / self.std)


def export_partner(model: str, out: Path, weights: str | None = None) -> dict:
    """Write the partner graph of ``model`` to ``out`` (atomically); returns its description."""
    import io

    zoo = create(model, weights=weights, device="cpu")
    if zoo.num_classes != 1000:
        raise InputError(f"--model {model}: the partner needs ImageNet-1k logits (top 5, "
                         f"animal = 0-397), this model has {zoo.num_classes} outputs")
    graph = PartnerGraph(zoo.module.to(memory_format=torch.contiguous_format), zoo.preprocessing)
    graph.eval()
    example = torch.zeros(1, FRAME, FRAME, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(graph, (example,), buffer, input_names=["image"],
                          output_names=["logits"], opset_version=OPSET, dynamo=False)
    atomic_write_bytes(out, buffer.getvalue())
    prep = whole_image(zoo.preprocessing)
    return {"model": model, "weights": zoo.weights, "input": "image uint8 (1, 256, 256, 3) RGB",
            "output": "logits float32 (1, 1000)", "input_size": prep.input_size,
            "interpolation": prep.interpolation, "mean": list(prep.mean), "std": list(prep.std),
            "opset": OPSET}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser, several=False, default_model=DEFAULT_MODEL, device=False,
                      batch_size=False)
    parser.add_argument("--out", required=True, type=Path,
                        help="output file: the partner's ONNX graph "
                             "(its provenance goes beside it)")


def main(args: argparse.Namespace) -> int:
    inputs = weights_inputs(args)
    check_output_file(args.out, inputs=inputs, option="--out")
    record = args.out.with_name(args.out.name + ".provenance.json")
    check_output_file(record, inputs=inputs, option="--out (its .provenance.json)")
    info = export_partner(args.model, args.out, args.weights)
    atomic_write_text(record, json.dumps(provenance(**info), indent=2))
    print(f"wrote the partner {args.model} to {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0
