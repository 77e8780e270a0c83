"""Models as observers: every stimulus of a set through each network, written as trial rows (SPEC §4).

A stimulus set is a folder with ``manifest.csv`` (stimuli.schema.STIMULUS_MANIFEST_COLUMNS,
``file`` relative to the folder). Each stimulus is shown whole (resized to the model's
input, no crop; see models/preprocessing.py). Rows: observer_type "model", runner
"model", observer_id = model_name = the zoo name, with a non-default rule in brackets.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm import tqdm

from experiment.schema import read_stimulus_rows, write_table
from models.decision import DEFAULT_RULE, RULES, check_rule, decide, observer_name
from models.preprocessing import Preprocessing, load_rgb, to_model_input, whole_image
from models.zoo import ZooModel, create
from stimuli.atomic import atomic_write_text
from stimuli.errors import InputError
from stimuli.provenance import provenance, utc_now

PRECISIONS = ("fp32", "bf16")


def default_batch_size(device: str | torch.device) -> int:
    """64 on a GPU; 8 on the CPU, where bigger batches fall out of cache (measured on
    efficientnet-lite0, 2 threads: batch 8 ≈ 69 img/s, 64 ≈ 29 img/s; docs/models.md)."""
    return 64 if torch.device(device).type == "cuda" else 8


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def read_stimulus_set(stimulus_dir: str | Path) -> list[dict]:
    """The manifest rows of a stimulus set, each with ``path`` (absolute image path) added."""
    folder = Path(stimulus_dir)
    manifest, rows = read_stimulus_rows(folder)
    for r in rows:
        r["path"] = folder / r["file"]
    missing = [r["file"] for r in rows if not r["path"].is_file()]
    if missing:
        raise InputError(f"{manifest}: {len(missing)} listed file(s) missing, e.g. {missing[0]}; "
                         "rebuild the set or restore the files")
    return rows


def batched_inputs(paths: Sequence[Path], prep: Preprocessing, batch_size: int,
                   device: str | torch.device) -> Iterator[torch.Tensor]:
    """Model-ready batches of the images at ``paths``, decoding the next batch while one runs."""
    starts = range(0, len(paths), batch_size)

    def load(i: int) -> torch.Tensor:
        return to_model_input([load_rgb(p) for p in paths[i:i + batch_size]], prep, device)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, starts[0]) if starts else None
        for k in range(len(starts)):
            batch = pending.result()
            pending = pool.submit(load, starts[k + 1]) if k + 1 < len(starts) else None
            yield batch


def model_logits(model: ZooModel, paths: Sequence[Path], batch_size: int | None = None,
                 prep: Preprocessing | None = None, progress: bool = True,
                 precision: str = "fp32") -> torch.Tensor:
    """(N, num_classes) float32 CPU logits for the images at ``paths`` (whole-image framing by default).

    ``precision="bf16"`` runs under bfloat16 autocast (fast on CPUs with AMX and on GPUs);
    logits differ slightly from fp32, so a near-tie can flip: opt-in, recorded in provenance.
    """
    prep = prep or whole_image(model.preprocessing)
    device = next(model.module.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=check_precision(precision) == "bf16")
    out = []
    with torch.inference_mode(), autocast, tqdm(total=len(paths), desc=model.name, unit="img",
                                                disable=not progress) as bar:
        for x in batched_inputs(paths, prep, batch_size, device):
            out.append(model.module(x).float().cpu())
            bar.update(len(x))
    return torch.cat(out)


def _rules(rule: str | Sequence[str]) -> list[str]:
    rules = [rule] if isinstance(rule, str) else list(rule)
    if not rules:
        raise InputError(f"no decision rule given; use one or more of: {', '.join(RULES)}")
    return [check_rule(r) for r in rules]


def observe(models: Sequence[str | ZooModel] | str | ZooModel, stimulus_dir: str | Path,
            rule: str | Sequence[str] = DEFAULT_RULE, batch_size: int | None = None,
            device: str | torch.device = "cpu", weights: str | Path | None = None,
            progress: bool = True, precision: str = "fp32") -> list[dict]:
    """Trial rows (dicts keyed by experiment.schema.TRIAL_COLUMNS) of each model × rule on a stimulus set."""
    if isinstance(models, str | ZooModel):
        models = [models]
    rules = _rules(rule)
    stimuli = read_stimulus_set(stimulus_dir)
    paths = [s["path"] for s in stimuli]
    rows = []
    for m in models:
        model = m if isinstance(m, ZooModel) else create(m, weights=weights, device=device)
        logits = model_logits(model, paths, batch_size, progress=progress, precision=precision)
        stamp = utc_now()
        for r in rules:
            d = decide(logits, r)
            name = observer_name(model.name, r)
            for i, s in enumerate(stimuli):
                response = "animal" if bool(d.animal[i]) else "non-animal"
                rows.append({
                    "observer_id": name, "observer_type": "model", "runner": "model",
                    "trial": i + 1, "practice": 0,
                    "stimulus_id": s["stimulus_id"], "image_id": s["image_id"],
                    "category": s["category"], "level_index": s["level_index"],
                    "level_percent": s["level_percent"], "response": response,
                    "correct": int(response == s["category"]), "timeout": 0,
                    "model_name": name, "p_animal": round(float(d.p_animal[i]), 6),
                    "top1_class": int(d.top1[i]), "timestamp_utc": stamp,
                })
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="comma-separated zoo or timm names")
    parser.add_argument("--stimuli", required=True, type=Path, help="stimulus set folder (with manifest.csv)")
    parser.add_argument("--out", required=True, type=Path, help="trial table to write (CSV)")
    parser.add_argument("--rule", default=DEFAULT_RULE,
                        help="decision rule(s), comma-separated: top1 (paper's, default) or mass")
    parser.add_argument("--weights", default=None,
                        help="weights for a single --model: local .pth/.safetensors, 'timm' or 'random'")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per forward pass (default: 64 on a GPU, 8 on the CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="fp32 (default) or bf16 autocast: faster on AMX CPUs and GPUs, "
                             "may flip near-tie decisions; recorded in the provenance")


def main(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.model.split(",") if n.strip()]
    if args.weights is not None and len(names) != 1:
        raise InputError("--weights applies to one model; run observe once per weights file")
    batch_size = args.batch_size or default_batch_size(args.device)
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    rules = [r.strip() for r in args.rule.split(",") if r.strip()]
    rows = observe(names, args.stimuli, rule=rules, batch_size=batch_size,
                   device=args.device, weights=args.weights, precision=args.precision)
    write_table(args.out, rows)
    record = provenance(models=names, stimuli=str(args.stimuli), rules=rules,
                        batch_size=batch_size, device=str(args.device), weights=args.weights,
                        precision=args.precision)
    atomic_write_text(args.out.with_name(args.out.name + ".provenance.json"), json.dumps(record, indent=2))
    print(f"wrote {len(rows)} trial rows to {args.out}")
    return 0
