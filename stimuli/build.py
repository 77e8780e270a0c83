"""Build a stimulus set (PNG stimuli, manifest.csv, stimulus_set.json, contact sheet) atomically; CLI ``build``."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stimuli.atomic import atomic_write_text
from stimuli.cli_types import float_in, int_at_least, int_in
from stimuli.errors import InputError
from stimuli.io import BuildItem, items_from_folders, read_build_manifest
from stimuli.masks import ORDERS
from stimuli.outputs import building_folder, check_output_folder
from stimuli.provenance import provenance
from stimuli.render import (  # noqa: F401  (plan_image, render_level, load_item, image_seed: public API)
    ImagePlan,
    image_seed,
    init_worker,
    item_amplitude,
    load_item,
    plan_image,
    render_item,
    render_level,
)
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS


def log_spaced_levels(n: int = 11) -> tuple[float, ...]:
    """``n`` percentages log-spaced from 1 to 100 (SPEC §1: the authors use n = 11)."""
    return tuple(float(p) for p in 10 ** np.linspace(0, 2, n))


DEFAULT_LEVELS = log_spaced_levels(11)
SPECTRA = ("image", "set")
#: Largest canvas side, px (docs/stimuli.md): 8x the paradigm's 256, still shown 1:1 on a 4K
#: display; rendering one image at 2048 peaks near 0.6 GB per worker (4096: ~2 GB).
MAX_SIZE = 2048


@dataclass(frozen=True)
class BuildConfig:
    """Every parameter that shapes a stimulus set; defaults from SPEC §1-2 and docs/stimuli.md."""

    size: int = 256                      # canvas side, px
    levels_percent: tuple[float, ...] = DEFAULT_LEVELS
    full: bool = True                    # add the unmasked full-image condition after the levels
    order: str = "pgrow"                 # rank | grow | pgrow
    budget: int = 16384                  # pixels revealed at 100 % (a quarter of 256 x 256)
    seed: int = 0                        # set seed; per-image seeds derive from it and image_id
    spectrum: str = "image"              # image: own amplitude spectrum; set: set-average spectrum
    png_compress_level: int = 6          # zlib level for PNGs; with Huffman-only coding (see render.encode_png)
    maps_note: str = field(default="", compare=False)  # where the maps came from, saved with the set

    def __post_init__(self):
        problems = []
        if not 8 <= self.size <= MAX_SIZE:
            problems.append(f"size {self.size} outside 8..{MAX_SIZE}")
        if not 1 <= self.budget <= self.size * self.size:
            problems.append(f"budget {self.budget} outside 1..{self.size * self.size} (canvas pixels)")
        lv = self.levels_percent
        if not lv or any(not 0 < p <= 100 for p in lv) or any(b <= a for a, b in zip(lv, lv[1:], strict=False)):
            problems.append(f"levels {list(lv)} must be increasing percentages in (0, 100]")
        if self.order not in ORDERS:
            problems.append(f"order {self.order!r} not one of {', '.join(ORDERS)}")
        if self.spectrum not in SPECTRA:
            problems.append(f"spectrum {self.spectrum!r} not one of {', '.join(SPECTRA)}")
        if not 0 <= self.seed < 2 ** 63:
            problems.append(f"seed {self.seed} must be in 0..2**63-1")
        if not 0 <= self.png_compress_level <= 9:
            problems.append(f"png_compress_level {self.png_compress_level} outside 0..9")
        if problems:
            raise InputError("build configuration: " + "; ".join(problems) + "; fix the option(s)")


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
                                 f"{' (named in ' + it.source + ')' if it.source else ''}; fix the path")


def build_stimulus_set(source, out_dir: str | Path, config: BuildConfig = BuildConfig(), *,
                       overwrite: bool = False, workers: int | None = None, progress: bool = True,
                       stats: dict | None = None) -> Path:
    """Build a stimulus set from a build-manifest path or BuildItems into ``out_dir``; returns ``out_dir``.

    ``out_dir`` is checked first (``stimuli.outputs.check_output_folder``: not a file, not
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
    """Render every item's stimuli into ``tmp/stimuli``; returns (manifest rows, encode s, work s)."""
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


def _write_set_info(path: Path, items: list[BuildItem], config: BuildConfig, rows: list[dict]) -> None:
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


_INT_COLUMNS = ("level_index", "n_revealed", "budget", "seed")
_OPTIONAL_FLOAT = ("level_percent", "centroid_dx", "centroid_dy")


def read_stimulus_manifest(set_dir: str | Path) -> list[dict]:
    """Rows of a set's manifest.csv, typed: ints, floats, None for empty cells; ``file`` stays relative."""
    path = Path(set_dir) / "manifest.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header, raw = tuple(reader.fieldnames or ()), list(reader)
    except OSError as err:
        raise InputError(f"{path}: cannot read the stimulus manifest ({err.strerror}); "
                         "pass a folder made by 'python -m stimuli build'") from err
    if header[:len(STIMULUS_MANIFEST_COLUMNS)] != STIMULUS_MANIFEST_COLUMNS:
        raise InputError(f"{path}: header is not the stimulus-manifest columns "
                         f"{','.join(STIMULUS_MANIFEST_COLUMNS)}; rebuild the set")
    rows = []
    for r in raw:
        row = dict(r)
        for c in _INT_COLUMNS:
            row[c] = int(row[c])
        for c in _OPTIONAL_FLOAT:
            row[c] = float(row[c]) if row[c] else None
        row["class_index"] = int(row["class_index"]) if row["class_index"] else None
        rows.append(row)
    return rows


def add_arguments(parser) -> None:
    """CLI options of ``python -m stimuli build``; defaults are BuildConfig's; ranges checked at parse time."""
    d = BuildConfig()
    src = parser.add_argument_group("input (a manifest, or two folders)")
    src.add_argument("--manifest", type=Path, help="build manifest CSV: image,map,image_id,category,class_index")
    src.add_argument("--images", type=Path, help="folder with animal/ and non-animal/ sub-folders of images")
    src.add_argument("--maps", type=Path, help="folder of maps (.npy/.npz/.png/.jpg) named like the images")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must be empty or new)")
    parser.add_argument("--seed", type=int_in(0, 2 ** 63 - 1), default=d.seed,
                        help=f"set seed (default {d.seed})")
    parser.add_argument("--order", choices=ORDERS, default=d.order, help=f"pixel order (default {d.order})")
    parser.add_argument("--budget", type=int_at_least(1), default=d.budget,
                        help=f"pixels revealed at 100%% for every image (default {d.budget})")
    parser.add_argument("--levels", type=float_in(0, 100, low_open=True), nargs="+",
                        default=list(d.levels_percent),
                        help="revealed percentages, increasing (default: 11 log-spaced, 1..100)")
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=d.full,
                        help="add the unmasked full-image condition (default on; --no-full drops it)")
    parser.add_argument("--spectrum", choices=SPECTRA, default=d.spectrum,
                        help=f"noise amplitude spectrum: each image's own or the set average (default {d.spectrum})")
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
    out = build_stimulus_set(items, args.out, config, overwrite=args.overwrite, workers=args.workers)
    print(f"wrote {len(read_stimulus_manifest(out))} stimuli of {len(items)} images to {out}")
    return 0
