"""The "where" results of ``python -m models where --out FILE.json`` read for the report.

Each file is ``{"results": [...], "provenance": {...}}``; a result has ``model``,
``n_images``, ``mean_rho``, ``ceiling``, ``ceiling_source``, ``score`` (= mean ρ / ceiling),
``score_ci``, ``dice``, ``iou``, ``per_image_rho`` and ``image_ids``; the centre-bias
control (``models where --centre-bias``) also has ``"control": "centre_bias"``. The score's
SD is bootstrapped here over images from ``per_image_rho`` (the paper's ± SD).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from suite.errors import InputError

_KEYS = ("model", "n_images", "mean_rho", "ceiling", "score", "score_ci", "per_image_rho")


@dataclass(frozen=True)
class WhereTable:
    """Models' feature alignment (one row each), the centre-bias control, the maps' note."""

    models: pd.DataFrame
    control: pd.Series | None
    maps_note: str
    files: list[str]


def _maps_note(images: str) -> str:
    """The build manifest's map_source ("NOT HUMAN: …" for maps not from people), if known."""
    path = Path(images)
    if not path.is_file():
        return ""
    from stimuli.maps import maps_note

    try:
        return maps_note(path)
    except (OSError, ValueError, UnicodeDecodeError):
        return ""


def _row(result: dict, path: Path, n_boot: int, seed: int) -> dict:
    missing = [k for k in _KEYS if k not in result]
    if missing:
        raise InputError(f"{path}: a result lacks {missing}; give the JSON written by "
                         "python -m models where --out FILE.json")
    rho = np.asarray(result["per_image_rho"], dtype=float)
    ceiling = float(result["ceiling"])
    if rho.size == 0 or not np.isfinite(rho).all() or not ceiling > 0:
        raise InputError(f"{path}: model {result['model']!r} has no finite per-image ρ or a "
                         "ceiling ≤ 0; rerun python -m models where")
    rng = np.random.default_rng(seed)
    boot = rho[rng.integers(0, rho.size, (n_boot, rho.size))].mean(axis=1) / ceiling
    lo, hi = result["score_ci"]
    return {"model_name": str(result["model"]), "n_images": int(result["n_images"]),
            "mean_rho": float(result["mean_rho"]), "ceiling": ceiling,
            "ceiling_source": result.get("ceiling_source", ""), "score": float(result["score"]),
            "score_low": float(lo), "score_high": float(hi),
            "score_sd": float(boot.std(ddof=1)) if n_boot > 1 else float("nan"),
            "dice": result.get("dice"), "iou": result.get("iou"),
            "control": result.get("control", ""), "source_file": str(path)}


def read_where(paths, n_boot: int = 1000, seed: int = 0) -> WhereTable:
    """Read ``models where`` JSON files; a model given twice, a file of another format or
    results on different images are refused (one InputError naming the file)."""
    rows, notes, files, images = [], set(), [], {}
    for p in paths:
        path = Path(os.fspath(p))
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: --where file not found; write it with python -m models "
                             "where --out FILE.json") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: --where file is not JSON ({err}); give the file written "
                             "by python -m models where --out") from None
        if not isinstance(record, dict) or not isinstance(record.get("results"), list):
            raise InputError(f"{path}: no \"results\" list; give the JSON written by "
                             "python -m models where --out FILE.json")
        files.append(str(path))
        src = (record.get("provenance") or {}).get("parameters", {}).get("images", "")
        if src:
            notes.add(_maps_note(src))
        for result in record["results"]:
            row = _row(result, path, n_boot, seed)
            ids = tuple(result.get("image_ids") or ())
            images.setdefault(ids, str(path))
            rows.append(row)
    if not rows:
        raise InputError(f"{', '.join(files)}: no results in the --where file(s)")
    if len(images) > 1:
        a, b = list(images.values())[:2]
        raise InputError(f"--where: {a} and {b} score different images; compare models on "
                         "the same images (one models where run, or the same --images)")
    table = pd.DataFrame(rows)
    dup = table.loc[table["model_name"].duplicated(), "model_name"]
    if len(dup):
        raise InputError(f"--where: model {dup.iloc[0]!r} appears twice; give each model once")
    is_control = table["control"] == "centre_bias"
    control = table[is_control].iloc[0] if is_control.any() else None
    note = "; ".join(sorted(n for n in notes if n))
    return WhereTable(table[~is_control].reset_index(drop=True), control, note, files)


def maps_are_human(note: str) -> bool | None:
    """True/False when the note says; None when it does not."""
    if not note or note.startswith("as supplied"):
        return None
    return not note.upper().lstrip().startswith("NOT HUMAN")
