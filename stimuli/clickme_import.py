"""``python -m stimuli import-clickme``: the published maps (ClickMe shards, Clicktionary .npz)
as a build manifest.

ClickMe TFRecord shards hold ``image`` (256×256 RGB JPEG), ``heatmap`` (256×256 8-bit JPEG)
and ``label`` (ImageNet index): the keys the authors' loader parses (serre-lab/Harmonization,
common/clickme_dataset.py); ``--clickme-keys`` names others. Clicktionary's per-image .npz
key names could not be established from public code, so they are found among common names
or given with ``--clicktionary-keys IMAGE MAP [LABEL]`` (docs/maps.md). The category comes
from the ImageNet index (animal = 0–397, paradigm §1).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stimuli.maps import MANIFEST, PROVENANCE, category_of, manifest_row, png_bytes, write_manifest
from stimuli.schema import CATEGORIES
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.cli_types import exactly, int_at_least, list_item
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import provenance
from suite.tfrecord import iter_records, parse_example

CLICKME_SOURCE = "human clicks: ClickMe release (Linsley et al. 2019)"
CLICKTIONARY_SOURCE = "human clicks: Clicktionary release (Linsley et al. 2017)"
IMAGE_KEYS = ("image", "img", "im", "images")
MAP_KEYS = ("heatmap", "click_map", "clickmap", "map", "importance_map")
LABEL_KEYS = ("label", "class_index", "labels")


@dataclass(frozen=True)
class ClickMeKeys:
    """Feature keys of a ClickMe record; defaults are those of the authors' release."""

    image: str = "image"
    heatmap: str = "heatmap"
    label: str = "label"


#: The release's feature keys, in ``--clickme-keys`` order.
CLICKME_KEYS = tuple(astuple(ClickMeKeys()))


def decode_clickme(data: bytes, keys: ClickMeKeys = ClickMeKeys(), where: str = "record"
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """One ClickMe record → image (H, W, 3) uint8, heatmap (H, W) float32 in 0–255, label."""
    image, heat, label, _ = _decode(data, keys, where)
    return image, heat, label


def _decode(data: bytes, keys: ClickMeKeys,
            where: str) -> tuple[np.ndarray, np.ndarray, int, bytes]:
    try:
        ex = parse_example(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: not a tf.train.Example ({err}); is this a ClickMe shard?") \
            from err
    for k in (keys.image, keys.heatmap, keys.label):
        if not ex.get(k):
            raise InputError(f"{where}: no feature {k!r} (found {sorted(ex)}); give the shard's "
                             "keys with --clickme-keys IMAGE HEATMAP LABEL")
    raw = ex[keys.image][0]
    if not isinstance(raw, bytes) or not isinstance(ex[keys.heatmap][0], bytes):
        raise InputError(f"{where}: {keys.image!r} and {keys.heatmap!r} must hold encoded images")
    try:
        image = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
        heat = np.asarray(Image.open(io.BytesIO(ex[keys.heatmap][0])).convert("L"), np.float32)
    except (OSError, TypeError) as err:
        raise InputError(f"{where}: image or heatmap is not a decodable JPEG/PNG ({err})") from err
    return image, heat, int(ex[keys.label][0]), raw


def _safe(stem: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return s or "shard"


def _check_class(label: int, where: str) -> int:
    if not 0 <= label <= 999:
        raise InputError(f"{where}: label {label} is not an ImageNet class 0-999")
    return label


def _import_shards(shards: list[Path], keys: ClickMeKeys, limit: int | None, out: Path,
                   rows: list[dict], skipped: list[str]) -> None:
    for shard in shards:
        for k, data in enumerate(iter_records(shard)):
            if limit is not None and len(rows) >= limit:
                return
            where = f"{shard} (record {k})"
            image, heat, label, raw = _decode(data, keys, where)
            image_id = f"{_safe(shard.stem)}-{k:06d}"
            if not (heat > 0).any():
                skipped.append(f"{image_id}: all-zero heatmap")
                continue
            jpeg = raw[:3] == b"\xff\xd8\xff"
            image_file = f"images/{image_id}.{'jpg' if jpeg else 'png'}"
            atomic_write_bytes(out / image_file, raw if jpeg else png_bytes(image))
            map_file = f"maps/{image_id}.png"
            atomic_write_bytes(out / map_file, png_bytes(heat.astype(np.uint8)))
            label = _check_class(label, where)
            rows.append(manifest_row(image_id, image_file, category_of(label), label, map_file,
                                     CLICKME_SOURCE))


def _pick(keys: list[str], wanted: str | None, candidates: tuple[str, ...], what: str,
          path: Path, required: bool = True) -> str | None:
    if wanted:
        if wanted not in keys:
            raise InputError(f"{path}: no array {wanted!r} (holds {keys}); fix --clicktionary-keys")
        return wanted
    found = [k for k in candidates if k in keys]
    if not found and required:
        raise InputError(f"{path}: no {what} array among {keys}; name it with "
                         "--clicktionary-keys IMAGE MAP [LABEL]")
    return found[0] if found else None


def _as_image(arr: np.ndarray, path: Path) -> np.ndarray:
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{path}: image array has shape {arr.shape}; expected (H, W, 3)")
    arr = arr[..., :3].astype(np.float64)
    if arr.max() <= 1.0:
        arr = arr * 255.0
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _import_clicktionary(files: list[Path], spec: list[str], category: str | None,
                         limit: int | None, out: Path, rows: list[dict],
                         skipped: list[str]) -> None:
    for path in files:
        if limit is not None and len(rows) >= limit:
            return
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.files)
                ik = _pick(keys, spec[0] if spec else None, IMAGE_KEYS, "image", path)
                mk = _pick(keys, spec[1] if len(spec) > 1 else None, MAP_KEYS, "map", path)
                lk = _pick(keys, spec[2] if len(spec) > 2 else None, LABEL_KEYS, "label", path,
                           required=False)
                image, heat = _as_image(z[ik], path), np.squeeze(np.asarray(z[mk], np.float64))
                label = int(np.asarray(z[lk]).ravel()[0]) if lk else None
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: cannot read the .npz ({err}); replace the file") from err
        if heat.ndim != 2 or heat.shape != image.shape[:2]:
            raise InputError(f"{path}: map {heat.shape} does not match image {image.shape[:2]}")
        if not np.isfinite(heat).all() or (heat < 0).any():
            raise InputError(f"{path}: map has negative or non-finite values")
        image_id = _safe(path.stem)
        if not (heat > 0).any():
            skipped.append(f"{image_id}: all-zero map")
            continue
        if label is None and category is None:
            raise InputError(f"{path}: no label array; give the images' category with --category")
        cls = _check_class(label, str(path)) if label is not None else None
        image_file, map_file = f"images/{image_id}.png", f"maps/{image_id}.npy"
        atomic_write_bytes(out / image_file, png_bytes(image))
        np.save(out / map_file, (heat / heat.max()).astype(np.float32))
        rows.append(manifest_row(image_id, image_file, category_of(cls) if cls is not None
                                 else category, cls, map_file, CLICKTIONARY_SOURCE))


def add_arguments(parser) -> None:
    parser.add_argument("shards", type=list_item(Path), nargs="*", metavar="SHARD",
                        help="ClickMe TFRecord shards (uncompressed)")
    parser.add_argument("--clicktionary", type=list_item(Path), nargs="+", default=[],
                        metavar="FILE",
                        help="Clicktionary per-image .npz files")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: images, maps and build manifest (new or empty)")
    parser.add_argument("--limit", type=int_at_least(1), default=None,
                        help="import at most N images")
    parser.add_argument("--clickme-keys", nargs="+", action=exactly(3), type=list_item(),
                        default=list(CLICKME_KEYS), metavar="KEY",
                        help="the shards' three feature keys IMAGE HEATMAP LABEL (default the "
                             f"release's: {' '.join(CLICKME_KEYS)})")
    parser.add_argument("--clicktionary-keys", nargs="+", action=exactly(2, 3), type=list_item(),
                        default=[], metavar="NAME", help="array names IMAGE MAP [LABEL] in the "
                                                         ".npz (default: found by name)")
    parser.add_argument("--category", choices=CATEGORIES, default=None,
                        help="category of Clicktionary images that carry no label")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier output of this suite")


def main(args) -> int:
    if not args.shards and not args.clicktionary:
        raise InputError("nothing to import: give ClickMe SHARD files and/or --clicktionary FILE …")
    inputs = [*args.shards, *args.clicktionary]
    for p in inputs:
        if not p.is_file():
            raise InputError(f"{p}: not found; check the path")
    keys = list(args.clickme_keys)
    spec = list(args.clicktionary_keys)
    out = check_output_folder(args.out, inputs=inputs, overwrite=args.overwrite)
    rows: list[dict] = []
    skipped: list[str] = []
    with building_folder(out, "stimuli import-clickme") as tmp:
        (tmp / "images").mkdir()
        (tmp / "maps").mkdir()
        _import_shards(args.shards, ClickMeKeys(*keys), args.limit, tmp, rows, skipped)
        _import_clicktionary(args.clicktionary, spec, args.category, args.limit, tmp, rows, skipped)
        if not rows:
            raise InputError("no image imported (every map was empty); check the files")
        write_manifest(tmp / MANIFEST, rows)
        atomic_write_text(tmp / PROVENANCE, json.dumps({
            "map_source": "; ".join(sorted({r["map_source"] for r in rows})), "human": True,
            "n_images": len(rows), "left_out": skipped,
            "provenance": provenance(shards=[str(p) for p in args.shards],
                                     clicktionary=[str(p) for p in args.clicktionary],
                                     limit=args.limit, clickme_keys=keys, clicktionary_keys=spec)},
            indent=2) + "\n")
    for s in skipped:
        print(f"left out: {s}")
    print(f"imported {len(rows)} images with maps to {out / MANIFEST}")
    return 0
