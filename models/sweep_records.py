"""A sweep's folder: per-model records (resume keys), the summary and merged tables, ranks.

The bookkeeping of ``models sweep`` (models/sweep.py): where a model's output lives, when
an earlier output still matches, how rank 0 merges what every rank wrote.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from datetime import timedelta
from pathlib import Path

import torch

from suite.atomic import atomic_write_text
from suite.outputs import MARK, check_output_folder, is_suite_folder
from suite.provenance import file_sha256

COMMAND = "models sweep"
SUMMARY_COLUMNS = ("model", "class", "status", "seconds", "rows", "top1", "where_score", "error")
FAILURE_COLUMNS = ("model", "class", "error")


def folder_name(name: str) -> str:
    """A file-system-safe folder for a model name (a short hash added when characters change)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return safe if safe == name else f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


class Ranks:
    """This process's place in a torchrun job (rank 0 of 1 without one); a gloo group for
    barriers."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local = int(os.environ.get("LOCAL_RANK", "0"))
        self._own = False
        if self.world > 1 and not torch.distributed.is_initialized():
            # gloo: barriers only, no tensors exchanged, so it serves CPU and GPU runs alike;
            # a long model on one rank must not time the others out at the final barrier
            torch.distributed.init_process_group("gloo", timeout=timedelta(days=7))
            self._own = True

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self._own:
            torch.distributed.destroy_process_group()


def is_sweep(out: Path) -> bool:
    return is_suite_folder(out) and json.loads((out / MARK).read_text()).get("made_by") == COMMAND


def prepare_out(out: Path, inputs: list[Path], overwrite: bool) -> bool:
    """Check (and on rank 0 create) the output folder; True when it is an earlier sweep's."""
    resuming = is_sweep(out)
    check_output_folder(out, inputs=inputs, overwrite=overwrite or resuming)
    return resuming


def matching_record(folder: Path, key: dict) -> dict | None:
    """The record in ``folder`` if it was made with ``key`` and its files are intact, else None."""
    try:
        record = json.loads((folder / "record.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("key") != key:
        return None
    for fname, sha in record.get("files", {}).items():
        if not (folder / fname).is_file() or file_sha256(folder / fname) != sha:
            return None
    return record


def csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def concat_csv(paths: list[Path]) -> str:
    """CSV files with one header, in order (all written with the same columns)."""
    text = ""
    for p in paths:
        lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
        text += "".join(lines if not text else lines[1:])
    return text


def merge(names: list[str], statuses: dict[str, dict], opts) -> dict:
    """rank 0: summary.csv, failures.csv and the merged trials/accuracy/where of the finished
    models."""
    out = opts.out
    summary = [statuses[n] for n in names]
    atomic_write_text(out / "summary.csv", csv_text(summary, SUMMARY_COLUMNS))
    failed = [s for s in summary if s["status"] == "failed"]
    atomic_write_text(out / "failures.csv", csv_text(
        [{k: s[k] for k in FAILURE_COLUMNS} for s in failed], FAILURE_COLUMNS))
    done = [out / "models" / folder_name(s["model"]) for s in summary if s["status"] != "failed"]
    merged = {}
    if done:
        merged["trials"] = atomic_write_text(out / "trials.csv",
                                             concat_csv([d / "trials.csv" for d in done]))
        if opts.accuracy is not None:
            merged["accuracy"] = atomic_write_text(out / "model_accuracy.csv", concat_csv(
                [d / "accuracy.csv" for d in done]))
        if opts.where is not None:
            results = [json.loads((d / "where.json").read_text(encoding="utf-8")) for d in done]
            merged["where"] = atomic_write_text(out / "where.json", json.dumps(
                {"results": results}, indent=2) + "\n")
    else:  # nothing finished: leave no stale merged table from an earlier sweep
        for stale in ("trials.csv", "model_accuracy.csv", "where.json"):
            (out / stale).unlink(missing_ok=True)
    return {"summary": summary, "failed": failed, **merged}


