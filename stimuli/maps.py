"""``python -m stimuli maps``: importance maps from the game's clicks, or (labelled NOT HUMAN)
without people.

``--clicks CSV``: per image, each player's bubble map (paradigm §6), the mean over players,
a flat-disc blur applied twice, min–max; the split-half reliability, its null and the
centre-bias control as a table and a figure. ``--from contrast|centre``: maps made by the
suite (colour-contrast saliency, a centre Gaussian) — never human, and said so in the
build manifest's ``map_source`` column and in maps_provenance.json. docs/maps.md.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from stimuli.click_maps import (
    BUBBLE,
    FRAME,
    ImageEntry,
    aggregate,
    frame_image,
    player_maps,
    read_clicks,
    read_image_list,
)
from stimuli.derived_maps import centre_map, contrast_saliency
from stimuli.schema import ANIMAL_CLASS_MAX
from stimuli.simulated_players import SIMULATED_PREFIX
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.cli_types import int_at_least, int_in
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import provenance

MANIFEST = "build_manifest.csv"
PROVENANCE = "maps_provenance.json"
PARTICIPANT_MAPS = "participant_maps.npz"
MANIFEST_COLUMNS = ("image", "map", "image_id", "category", "class_index", "map_source")
HUMAN = "human clicks"
SIMULATED = "NOT HUMAN: clicks of SIMULATED players (stimuli simulate-clicks)"
NOT_HUMAN = {
    "contrast": "NOT HUMAN: colour-contrast saliency (stimuli/derived_maps.py contrast_saliency)",
    "centre": "NOT HUMAN: centre Gaussian (sigma = a quarter of the frame)",
}


def category_of(class_index: int) -> str:
    """The category of an ImageNet class (paradigm §1: 0–397 are animals)."""
    return "animal" if class_index <= ANIMAL_CLASS_MAX else "non-animal"


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_manifest(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def manifest_row(image_id: str, image_file: str, category: str, class_index: int | None,
                 map_file: str, source: str) -> dict:
    return {"image": image_file, "map": map_file, "image_id": image_id, "category": category,
            "class_index": "" if class_index is None else class_index, "map_source": source}


def _write_image(entry: ImageEntry, folder: Path) -> tuple[str, np.ndarray]:
    """The image in its 256×256 frame under folder/images: the file copied when already so."""
    framed = frame_image(entry.image)
    (folder / "images").mkdir(exist_ok=True)
    with Image.open(entry.image) as im:
        as_is = im.size == (FRAME, FRAME) and im.mode == "RGB"
    if as_is:
        name = f"images/{entry.image_id}{entry.image.suffix.lower()}"
        shutil.copyfile(entry.image, folder / name)
    else:
        name = f"images/{entry.image_id}.png"
        atomic_write_bytes(folder / name, png_bytes(framed))
    return name, framed


def _write_map(folder: Path, image_id: str, m: np.ndarray) -> str:
    (folder / "maps").mkdir(exist_ok=True)
    name = f"maps/{image_id}.npy"
    np.save(folder / name, m.astype(np.float32))
    return name


def images_from(source: Path) -> list[ImageEntry]:
    """Images from a build manifest, or a folder with animal/ and non-animal/ sub-folders."""
    if source.is_file():
        return read_image_list(source)
    if source.is_dir():
        from stimuli.io import _check_labels
        from stimuli.schema import CATEGORIES
        entries = []
        for cat in CATEGORIES:
            for p in sorted((source / cat).glob("*")) if (source / cat).is_dir() else []:
                if p.is_file() and not p.name.startswith("."):
                    _check_labels(p.stem, cat, str(p))
                    entries.append(ImageEntry(p, p.stem, cat, None))
        if not entries:
            raise InputError(f"{source}: no images in animal/ or non-animal/ sub-folders")
        return entries
    raise InputError(f"{source}: not found; give a build manifest CSV or a folder of images")


def maps_without_people(entries: list[ImageEntry], kind: str, out: Path) -> list[dict]:
    """Write NOT HUMAN maps and images into ``out``; returns the manifest rows."""
    rows = []
    for e in entries:
        image_file, framed = _write_image(e, out)
        m = contrast_saliency(framed) if kind == "contrast" else centre_map()
        rows.append(manifest_row(e.image_id, image_file, e.category, e.class_index,
                                 _write_map(out, e.image_id, m), NOT_HUMAN[kind]))
    return rows


def maps_from_clicks(entries: list[ImageEntry], clicks: Path, out: Path,
                     args) -> tuple[list[dict], dict]:
    """Write human maps, per-player maps, reliability table + figure, excluded list into ``out``."""
    from stimuli.reliability import (
        RELIABILITY_COLUMNS,
        reliability,
        reliability_figure,
        reliability_rows,
    )
    rounds = read_clicks(clicks)
    known = {e.image_id for e in entries}
    unknown = sorted({r.image_id for r in rounds} - known)
    if unknown:
        raise InputError(f"{clicks}: image_id {unknown[0]!r} ({len(unknown)} unknown) is not in "
                         f"{args.images}; give the build manifest the game was built from")
    simulated = {r.player_id.startswith(SIMULATED_PREFIX) for r in rounds}
    if len(simulated) > 1:
        raise InputError(f"{clicks}: mixes SIMULATED players with people; make maps from "
                         "each apart")
    source = SIMULATED if simulated == {True} else HUMAN
    per_image, dropped = player_maps(rounds, args.min_bubbles, args.keep_skipped, args.bubble_px)
    kept, excluded = [], []
    for e in entries:
        n = len(per_image.get(e.image_id, {}))
        (kept if n >= args.min_players else excluded).append((e, n))
    excl_rows = [{"image_id": e.image_id, "n_players": n,
                  "reason": f"fewer than --min-players {args.min_players} players"}
                 for e, n in excluded]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=("image_id", "n_players", "reason"), lineterminator="\n")
    w.writeheader()
    w.writerows(excl_rows)
    atomic_write_text(out / "excluded.csv", buf.getvalue())
    for r in excl_rows:
        print(f"left out: {r['image_id']} ({r['n_players']} players < {args.min_players})")
    if not kept:
        raise InputError(f"{clicks}: no image has {args.min_players} players with at least "
                         f"{args.min_bubbles} bubbles; collect more rounds or lower --min-players")
    rows, stacks, participant = [], [], {}
    for e, _ in kept:
        stack = np.stack(list(per_image[e.image_id].values()))
        stacks.append(stack)
        participant[e.image_id] = stack
        image_file, _ = _write_image(e, out)
        rows.append(manifest_row(e.image_id, image_file, e.category, e.class_index,
                                 _write_map(out, e.image_id, aggregate(stack, args.blur_px)),
                                 source))
    np.savez_compressed(out / PARTICIPANT_MAPS, **participant)
    ids = [e.image_id for e, _ in kept]
    rel = reliability(stacks, args.blur_px, args.n_splits, args.seed)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RELIABILITY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(reliability_rows(ids, rel))
    atomic_write_text(out / "reliability.csv", buf.getvalue())
    atomic_write_bytes(out / "reliability.png", reliability_figure(ids, rel))
    summary = {"map_source": source, "n_rounds": len(rounds), "rounds_dropped": dropped,
               "n_images": len(kept),
               "images_left_out": [r["image_id"] for r in excl_rows],
               "mean_split_half_rho": _mean(rel.split_half), "mean_null_rho": _mean(rel.null),
               "mean_centre_bias_rho": _mean(rel.centre_bias),
               "mean_spearman_brown_rho": _mean(rel.spearman_brown)}
    print(f"{len(kept)} images, {len(excl_rows)} left out; "
          f"split-half ρ {summary['mean_split_half_rho']}"
          f", null {summary['mean_null_rho']}, "
          f"centre-bias control {summary['mean_centre_bias_rho']}")
    return rows, summary


def _mean(v: np.ndarray) -> float | None:
    return round(float(np.nanmean(v)), 4) if np.isfinite(v).any() else None


def add_arguments(parser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--clicks", type=Path,
                     help="clicks CSV from the game's export-clicks (docs/maps.md)")
    src.add_argument("--from", dest="source", choices=tuple(NOT_HUMAN),
                     help="maps without people (NOT HUMAN): colour contrast or a centre Gaussian")
    parser.add_argument("--images", type=Path, required=True,
                        help="build manifest (image, image_id, category[, class_index]); "
                             "with --from also a folder with animal/ and non-animal/ sub-folders")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: maps, build manifest, reliability (new or empty)")
    parser.add_argument("--min-bubbles", type=int_at_least(1), default=10,
                        help="drop rounds with fewer bubbles "
                             "(default 10: the partner's first query)")
    parser.add_argument("--min-players", type=int_at_least(2), default=5,
                        help="leave out images with fewer players (default 5, paradigm §6)")
    parser.add_argument("--bubble-px", type=int_in(2, 64), default=BUBBLE,
                        help=f"bubble side the game painted with: its build-clickme --bubble "
                             f"(default {BUBBLE}, paradigm §6)")
    parser.add_argument("--blur-px", type=int_at_least(1), default=21,
                        help="flat-disc diameter, applied twice (default 21)")
    parser.add_argument("--keep-skipped", action="store_true",
                        help="keep rounds the player skipped")
    parser.add_argument("--n-splits", type=int_at_least(1), default=1000,
                        help="random player splits for split-half reliability (default 1000)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="seed of the reliability splits (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier output of this suite")


def main(args) -> int:
    if args.clicks is not None and not args.images.is_file():
        raise InputError(f"{args.images}: --clicks needs --images BUILD_MANIFEST (a CSV file)")
    out = check_output_folder(args.out, inputs=[args.images, args.clicks], overwrite=args.overwrite)
    entries = images_from(args.images)
    if args.clicks is not None and not args.clicks.is_file():
        raise InputError(f"{args.clicks}: clicks CSV not found; check the path")
    with building_folder(out, "stimuli maps") as tmp:
        if args.clicks is not None:
            rows, summary = maps_from_clicks(entries, args.clicks, tmp, args)
            source = summary.pop("map_source")
        else:
            rows, summary = maps_without_people(entries, args.source, tmp), {}
            source = NOT_HUMAN[args.source]
        write_manifest(tmp / MANIFEST, rows)
        record = {"map_source": source, "human": source == HUMAN, **summary,
                  "provenance": provenance(
                      clicks=str(args.clicks) if args.clicks else None, source=args.source,
                      images=str(args.images), min_bubbles=args.min_bubbles,
                      min_players=args.min_players, bubble_px=args.bubble_px,
                      blur_px=args.blur_px,
                      keep_skipped=args.keep_skipped, n_splits=args.n_splits, seed=args.seed)}
        atomic_write_text(tmp / PROVENANCE, json.dumps(record, indent=2) + "\n")
    if source != HUMAN:
        print(source)
    print(f"wrote {len(rows)} maps and {out / MANIFEST}")
    return 0


def maps_note(manifest: str | Path) -> str:
    """The ``map_source`` values of a build manifest, joined; "" when it has none (for build)."""
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            sources = {(r.get("map_source") or "").strip() for r in csv.DictReader(fh)}
    except (OSError, UnicodeDecodeError):
        return ""
    sources.discard("")
    return "; ".join(sorted(sources))
