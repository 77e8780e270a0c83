"""Build a stimulus set (PNG stimuli, manifest.csv, stimulus_set.json, contact sheet) atomically;
CLI ``build``."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stimuli.config import MAX_SIZE, SPECTRA, BuildConfig
from stimuli.io import BuildItem, items_from_folders, read_build_manifest
from stimuli.manifest import read_stimulus_manifest
from stimuli.masks import ORDERS
from stimuli.render import init_worker, item_amplitude, render_item
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS
from suite.atomic import atomic_write_text
from suite.cli_types import float_in, int_at_least, int_in, list_item
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import provenance


def _set_amplitude(items: list[BuildItem], size: int, workers: int, progress: bool) -> np.ndarray:
    """Mean per-channel amplitude spectrum over the set: (3, S, S//2+1)."""
    tasks = [(it, size) for it in items]
    with ProcessPoolExecutor(workers) if workers > 1 else _NoPool() as pool:
        total = None
        for amp in tqdm(pool.map(item_amplitude, tasks), total=len(items), desc="spectrum",
                        unit="img", disable=not progress):
            total = amp if total is None else total + amp
    return total / len(items)


class _NoPool:
    """In-process stand-in for an executor (one worker)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    map = staticmethod(map)


def _resolve_items(source) -> list[BuildItem]:
    if isinstance(source, str | os.PathLike):
        return read_build_manifest(source)
    items = list(source)
    if not all(isinstance(it, BuildItem) for it in items):
        raise TypeError("build_stimulus_set takes a build-manifest path or a list of BuildItem")
    return items


def _check_files_exist(items: list[BuildItem]) -> None:
    for it in items:
        for kind, p in (("image", it.image), ("map", it.map)):
            if not Path(p).is_file():
                raise InputError(f"{p}: {kind} for image_id {it.image_id!r} not found"
                                 f"{' (named in ' + it.source + ')' if it.source else ''}; "
                                 "fix the path")


def build_stimulus_set(source, out_dir: str | Path, config: BuildConfig = BuildConfig(), *,
                       overwrite: bool = False, workers: int | None = None, progress: bool = True,
                       stats: dict | None = None) -> Path:
    """Build a stimulus set from a build-manifest path or BuildItems into ``out_dir``;
    returns ``out_dir``.

    ``out_dir`` is checked first (``suite.outputs.check_output_folder``: not a file, not
    under a file, writable, holding no input; a non-empty one needs ``overwrite`` and is
    replaced only if the suite made it). Everything is written to a hidden sibling folder
    and swapped into place at the end, so a failure leaves no output and any earlier set as
    it was. ``stats`` (if given) receives timings in seconds.
    """
    out = Path(out_dir)
    if workers is not None and workers < 1:
        raise InputError(f"workers {workers}: must be at least 1 (or None for all cores)")
    items = _resolve_items(source)
    named = [source] if isinstance(source, str | os.PathLike) else []
    check_output_folder(out, inputs=[*named, *(p for it in items for p in (it.image, it.map))],
                        overwrite=overwrite)
    _check_files_exist(items)
    workers = max(1, min(workers or os.cpu_count() or 1, len(items)))
    t_start = time.perf_counter()
    try:
        with building_folder(out, "stimuli build") as tmp:
            rows, encode_s, work_s = _render_set(items, config, tmp, workers, progress)
            _write_manifest(tmp / "manifest.csv", rows)
            from stimuli.contact_sheet import write_contact_sheet
            write_contact_sheet(tmp, tmp / "contact_sheet.png", rows=rows,
                                title="NOT HUMAN MAPS" if "NOT HUMAN" in config.maps_note else "")
            _write_set_info(tmp / "stimulus_set.json", items, config, rows)
    except BrokenProcessPool as err:
        raise InputError(f"{out}: a worker process died while rendering (killed, perhaps out of "
                         f"memory at --size {config.size}); nothing was written — try fewer "
                         "--workers or a smaller --size") from err
    except MemoryError as err:
        raise InputError(f"{out}: out of memory while rendering at --size {config.size}; nothing "
                         "was written — try fewer --workers or a smaller --size") from err
    if stats is not None:
        stats.update(wall_s=time.perf_counter() - t_start, encode_s=encode_s, work_s=work_s,
                     n_stimuli=len(rows), workers=workers)
    return out


def _render_set(items: list[BuildItem], config: BuildConfig, tmp: Path, workers: int,
                progress: bool) -> tuple[list[dict], float, float]:
    """Render every item's stimuli into ``tmp/stimuli``; returns (manifest rows, encode s,
    work s)."""
    (tmp / "stimuli").mkdir()
    amplitude = _set_amplitude(items, config.size, workers, progress) \
        if config.spectrum == "set" else None
    tasks = [(it, config, str(tmp)) for it in items]
    pool = None
    try:
        if workers > 1:
            pool = ProcessPoolExecutor(workers, initializer=init_worker, initargs=(amplitude,))
            results = pool.map(render_item, tasks)
        else:
            init_worker(amplitude)
            results = map(render_item, tasks)
        rows, encode_s, work_s = [], 0.0, 0.0
        for item_rows, enc, tot in tqdm(results, total=len(tasks), desc="stimuli", unit="img",
                                        disable=not progress):
            rows.extend(item_rows)
            encode_s += enc
            work_s += tot
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    return rows, encode_s, work_s


def _write_manifest(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=STIMULUS_MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _write_set_info(path: Path, items: list[BuildItem], config: BuildConfig,
                    rows: list[dict]) -> None:
    seeds = {r["image_id"]: r["seed"] for r in rows}
    info = {
        "kind": "stimulus_set",
        "config": asdict(config),
        "importance_maps": config.maps_note or "as supplied in the build manifest",
        "n_images": len(items),
        "n_stimuli": len(rows),
        "n_animal": sum(it.category == "animal" for it in items),
        "n_non_animal": sum(it.category == "non-animal" for it in items),
        "columns": list(STIMULUS_MANIFEST_COLUMNS),
        "images": [{"image_id": it.image_id, "category": it.category, "class_index": it.class_index,
                    "image": str(it.image), "map": str(it.map), "seed": seeds[it.image_id]}
                   for it in items],
        "provenance": provenance(**asdict(config)),
    }
    atomic_write_text(path, json.dumps(info, indent=2) + "\n")




def add_arguments(parser) -> None:
    """CLI options of ``python -m stimuli build``; defaults are BuildConfig's; ranges checked at
    parse time."""
    d = BuildConfig()
    src = parser.add_argument_group("input (a manifest, or two folders)")
    src.add_argument("--manifest", type=Path,
                     help="build manifest CSV: image,map,image_id,category,class_index")
    src.add_argument("--images", type=Path,
                     help="folder with animal/ and non-animal/ sub-folders of images")
    src.add_argument("--maps", type=Path,
                     help="folder of maps (.npy/.npz/.png/.jpg) named like the images")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: the stimulus set (must be empty or new)")
    parser.add_argument("--seed", type=int_at_least(0), default=d.seed,
                        help=f"set seed, below 2**63 (default {d.seed})")
    parser.add_argument("--order", choices=ORDERS, default=d.order,
                        help=f"pixel order (default {d.order})")
    parser.add_argument("--budget", type=int_at_least(1), default=d.budget,
                        help=f"pixels revealed at 100%% for every image (default {d.budget})")
    parser.add_argument("--levels", type=list_item(float_in(0, 100, low_open=True)), nargs="+",
                        metavar="PCT",
                        default=list(d.levels_percent),
                        help="revealed percentages, increasing, separated by spaces "
                             "(default: 11 log-spaced, 1..100)")
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=d.full,
                        help="add the unmasked full-image condition "
                             "(default on; --no-full drops it)")
    parser.add_argument("--spectrum", choices=SPECTRA, default=d.spectrum,
                        help="noise amplitude spectrum: each image's own or the set average "
                             f"(default {d.spectrum})")
    parser.add_argument("--size", type=int_in(8, MAX_SIZE), default=d.size,
                        help=f"canvas side in px, 8-{MAX_SIZE} (default {d.size})")
    parser.add_argument("--png-compress-level", type=int_in(0, 9), default=d.png_compress_level,
                        help=f"PNG zlib level 0-9 (default {d.png_compress_level})")
    parser.add_argument("--workers", type=int_at_least(1), default=None,
                        help="processes (default: all cores)")
    parser.add_argument("--maps-note", default="",
                        help="where the maps came from (saved in stimulus_set.json)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty output folder made by this suite")


def _manifest_maps_note(manifest) -> str:
    """The build manifest's ``map_source`` column (written by ``stimuli maps``), "" without one."""
    from stimuli.maps import maps_note
    return maps_note(manifest) if manifest else ""


def main(args) -> int:
    """Run ``python -m stimuli build``."""
    if args.manifest and (args.images or args.maps):
        raise InputError("--manifest: give either --manifest or --images with --maps, not both")
    if not (args.manifest or (args.images and args.maps)):
        raise InputError("no input: pass --manifest FILE, or --images DIR --maps DIR")
    # The output path is checked before any input is read.
    check_output_folder(args.out, inputs=[args.manifest, args.images, args.maps],
                        overwrite=args.overwrite)
    if args.manifest:
        items = read_build_manifest(args.manifest)
    else:
        items = items_from_folders(args.images, args.maps)
    config = BuildConfig(size=args.size, levels_percent=tuple(args.levels), full=args.full,
                         order=args.order, budget=args.budget, seed=args.seed,
                         spectrum=args.spectrum, png_compress_level=args.png_compress_level,
                         maps_note=args.maps_note or _manifest_maps_note(args.manifest))
    out = build_stimulus_set(items, args.out, config, overwrite=args.overwrite,
                             workers=args.workers)
    print(f"wrote {len(read_stimulus_manifest(out))} stimuli of {len(items)} images to {out}")
    return 0
