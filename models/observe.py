"""Models as observers: every stimulus of a set through each network, written as trial rows
(paradigm §4).

A stimulus set is a folder with ``manifest.csv`` (stimuli.schema.STIMULUS_MANIFEST_COLUMNS,
``file`` relative to the folder). Each stimulus is shown whole (resized to the model's
input, no crop; see models/preprocessing.py). Rows: observer_type "model", runner
"model", observer_id = model_name = the zoo name, with a non-default rule in brackets.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from experiment.schema import write_table
from models.cli_options import add_model_options, model_names
from models.decision import DEFAULT_RULE, RULES, check_rule, decide, observer_name
from models.preprocessing import Preprocessing, load_rgb, to_model_input, whole_image
from models.zoo import ZooModel, check_device, create
from stimuli.manifest import read_stimulus_rows
from suite.atomic import atomic_write_text
from suite.cli_types import list_item
from suite.errors import InputError
from suite.outputs import check_output_file
from suite.provenance import provenance, utc_now, verify_files

PRECISIONS = ("fp32", "bf16")


def default_batch_size(device: str | torch.device) -> int:
    """64 on a GPU; 8 on the CPU, where bigger batches fall out of cache (measured on
    efficientnet-lite0, 2 threads: batch 8 ≈ 69 img/s, 64 ≈ 29 img/s; docs/models.md)."""
    return 64 if torch.device(device).type == "cuda" else 8


#: /proc/cpuinfo flags of native bfloat16 arithmetic: x86 AVX512-BF16 and AMX, Arm's BF16.
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16, AMX or Arm BF16).

    Without it PyTorch emulates bf16 on the CPU: measured 16× slower than fp32 on an
    AVX2-only AMD EPYC (2.3 against 37.3 stimuli/s), with no gain in accuracy.
    """
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if callable(fn) and fn():
                return True
        except RuntimeError:
            pass
    return bool(_cpu_flags() & BF16_CPU_FLAGS)


def check_precision(precision: str, device: str | torch.device | None = None) -> str:
    """``precision`` if it is known and, for bf16, fast on ``device``; InputError otherwise.

    bf16 is offered for speed alone (it can only move results away from fp32), so it is
    refused where the hardware would emulate it and make the run many times slower.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and device is not None:
        dev = torch.device(device)
        if dev.type == "cpu" and not cpu_has_native_bf16():
            raise InputError("--precision bf16: this CPU has no native bfloat16 (no AVX512-BF16, "
                             "AMX or Arm BF16), so bf16 would be emulated and run many times "
                             "slower than fp32 (16x measured); use --precision fp32 here")
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise InputError(f"--precision bf16: the GPU {torch.cuda.get_device_name(dev)} has no "
                             "native bfloat16; use --precision fp32")
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
    # a swapped or shrunk image would be observed as if it were the stimulus the set describes
    verify_files(((r["path"], r["sha256"]) for r in rows), manifest)
    return rows


def prefetched(n: int, batch_size: int,
               load: Callable[[int, int], torch.Tensor]) -> Iterator[torch.Tensor]:
    """``load(i, j)`` for consecutive batches of ``n`` items, the next prepared in a thread
    while the caller runs the current one."""
    starts = range(0, n, batch_size)

    def fetch(i: int) -> torch.Tensor:
        return load(i, min(i + batch_size, n))

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(fetch, starts[0]) if starts else None
        for k in range(len(starts)):
            batch = pending.result()
            pending = pool.submit(fetch, starts[k + 1]) if k + 1 < len(starts) else None
            yield batch


def batched_inputs(paths: Sequence[Path], prep: Preprocessing, batch_size: int,
                   device: str | torch.device) -> Iterator[torch.Tensor]:
    """Model-ready batches of the images at ``paths``, decoding the next batch while one runs."""
    return prefetched(len(paths), batch_size, lambda i, j: to_model_input(
        [load_rgb(p) for p in paths[i:j]], prep, device))


def array_batches(images: np.ndarray, prep: Preprocessing, batch_size: int,
                  device: str | torch.device) -> Iterator[torch.Tensor]:
    """Model-ready batches of (N, H, W, 3) uint8 ``images`` (e.g. a memory-mapped decoded set),
    preparing the next batch while one runs; equal to ``batched_inputs`` on the same pixels."""
    return prefetched(len(images), batch_size,
                      lambda i, j: to_model_input(np.array(images[i:j]), prep, device))


def model_logits(model: ZooModel, paths: Sequence[Path], batch_size: int | None = None,
                 prep: Preprocessing | None = None, progress: bool = True,
                 precision: str = "fp32") -> torch.Tensor:
    """(N, num_classes) float32 CPU logits for the images at ``paths`` (whole-image framing by
    default).

    ``precision="bf16"`` runs under bfloat16 autocast (faster on GPUs and on CPUs with native
    bf16, refused elsewhere: see check_precision); logits differ slightly from fp32, so a
    near-tie can flip: opt-in, recorded in provenance.
    """
    prep = prep or whole_image(model.preprocessing)
    device = next(model.module.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    return _forward(model, batched_inputs(paths, prep, batch_size, device), len(paths),
                    progress, precision)


def array_logits(model: ZooModel, images: np.ndarray, batch_size: int | None = None,
                 prep: Preprocessing | None = None, progress: bool = True,
                 precision: str = "fp32") -> torch.Tensor:
    """``model_logits`` of (N, H, W, 3) uint8 ``images`` already decoded (models.sweep's
    memory-mapped set): the same transform on the same pixels, so the same logits."""
    prep = prep or whole_image(model.preprocessing)
    device = next(model.module.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    return _forward(model, array_batches(images, prep, batch_size, device), len(images),
                    progress, precision)


def _forward(model: ZooModel, batches: Iterator[torch.Tensor], n: int, progress: bool,
             precision: str) -> torch.Tensor:
    device = next(model.module.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=check_precision(precision, device) == "bf16")
    out = []
    with torch.inference_mode(), autocast, tqdm(total=n, desc=model.name, unit="img",
                                                disable=not progress) as bar:
        for x in batches:
            out.append(model.module(x).float().cpu())
            bar.update(len(x))
    return torch.cat(out)


def trial_rows(model_name: str, logits: torch.Tensor, stimuli: Sequence[dict],
               rules: Sequence[str], stamp: str) -> list[dict]:
    """Trial rows of one model on a set: each rule applied to the same logits, in set order."""
    rows = []
    for r in rules:
        d = decide(logits, r)
        name = observer_name(model_name, r)
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


def _rules(rule: str | Sequence[str]) -> list[str]:
    rules = [rule] if isinstance(rule, str) else list(rule)
    if not rules:
        raise InputError(f"no decision rule given; use one or more of: {', '.join(RULES)}")
    return [check_rule(r) for r in rules]


def observe(models: Sequence[str | ZooModel] | str | ZooModel, stimulus_dir: str | Path,
            rule: str | Sequence[str] = DEFAULT_RULE, batch_size: int | None = None,
            device: str | torch.device = "cpu", weights: str | Path | None = None,
            progress: bool = True, precision: str = "fp32") -> list[dict]:
    """Trial rows (dicts keyed by experiment.schema.TRIAL_COLUMNS) of each model × rule on a
    stimulus set."""
    if isinstance(models, str | ZooModel):
        models = [models]
    rules = _rules(rule)
    if any(isinstance(m, str) for m in models):  # built here, on ``device``: check it first
        check_precision(precision, check_device(device))
    check_precision(precision)
    stimuli = read_stimulus_set(stimulus_dir)
    paths = [s["path"] for s in stimuli]
    rows = []
    for m in models:
        model = m if isinstance(m, ZooModel) else create(m, weights=weights, device=device)
        logits = model_logits(model, paths, batch_size, progress=progress, precision=precision)
        rows += trial_rows(model.name, logits, stimuli, rules, utc_now())
    return rows


def check_outputs(out: Path, stimulus_dir: Path, weights: str | None,
                  option: str = "--out") -> Path:
    """Check a trial-table path and its provenance file before any work; returns the provenance
    path.

    Neither may be the set's manifest, one of its images or the weights file.
    """
    inputs = [Path(weights)] if weights not in (None, "", "timm", "pretrained", "random") else []
    manifest = Path(stimulus_dir) / "manifest.csv"
    inputs.append(manifest)
    if manifest.is_file():
        _, rows = read_stimulus_rows(stimulus_dir)
        inputs += [Path(stimulus_dir) / r["file"] for r in rows]
    check_output_file(out, inputs=inputs, option=option)
    record = out.with_name(out.name + ".provenance.json")
    check_output_file(record, inputs=inputs, option=f"{option} (its .provenance.json)")
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser, several=True)
    parser.add_argument("--stimuli", required=True, type=Path,
                        help="stimulus set folder (with manifest.csv)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output file: the trial table (CSV; its provenance goes beside it)")
    parser.add_argument("--rule", nargs="+", type=list_item(), default=[DEFAULT_RULE],
                        metavar="RULE", help="decision rule(s), separated by spaces: top1 "
                                             "(paper's, default) or mass")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="fp32 (default) or bf16 autocast: faster on GPUs and on CPUs with "
                             "native bf16 (AMX, AVX512-BF16), refused on other CPUs, where it is "
                             "emulated and many times slower; may flip near-tie decisions; "
                             "recorded in the provenance")


def main(args: argparse.Namespace) -> int:
    names = model_names(args)
    record_path = check_outputs(args.out, args.stimuli, args.weights)
    check_precision(args.precision, check_device(args.device))
    batch_size = args.batch_size or default_batch_size(args.device)
    rules = list(args.rule)
    rows = observe(names, args.stimuli, rule=rules, batch_size=batch_size,
                   device=args.device, weights=args.weights, precision=args.precision)
    write_table(args.out, rows)
    record = provenance(models=names, stimuli=str(args.stimuli), rules=rules,
                        batch_size=batch_size, device=str(args.device), weights=args.weights,
                        precision=args.precision)
    atomic_write_text(record_path, json.dumps(record, indent=2))
    print(f"wrote {len(rows)} trial rows to {args.out}")
    return 0
