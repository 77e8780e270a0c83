"""Reading the inputs of a build: photographs, importance maps, build manifests, folder trees."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from stimuli.schema import BUILD_MANIFEST_COLUMNS, CATEGORIES
from suite.errors import InputError

MAP_SUFFIXES = (".npy", ".npz", ".png", ".jpg", ".jpeg")
# Files of an --images folder read as photographs; others (README.txt, notes) are skipped.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pnm")
# image_id becomes part of file names, so it must be safe on every file system.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A map may be stored at another resolution than its image; this much aspect slack
# covers rounding of a downsampled map's side to whole pixels.
_ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class BuildItem:
    """One photograph, its importance map and its labels, as one build-manifest row names them."""

    image: Path
    map: Path
    image_id: str
    category: str
    class_index: int | None = None
    source: str = ""  # where the item was named (manifest file or folder), for error messages


def _check_labels(image_id: str, category: str, where: str) -> None:
    if not _SAFE_ID.match(image_id or ""):
        raise InputError(f"{where}: image_id {image_id!r} is empty or has characters other than "
                         "letters, digits, '.', '_' and '-'; "
                         "rename it (it becomes part of file names)")
    if category not in CATEGORIES:
        raise InputError(f"{where}: unknown category {category!r} for image {image_id!r}; "
                         f"use one of {', '.join(CATEGORIES)}")


def _check_unique(items: list[BuildItem], where: str) -> None:
    seen: dict[str, BuildItem] = {}
    for item in items:
        if item.image_id in seen:
            raise InputError(f"{where}: duplicate image_id {item.image_id!r} "
                             f"({seen[item.image_id].image} "
                             f"and {item.image}); give every image its own id")
        seen[item.image_id] = item
    if not items:
        raise InputError(f"{where}: no images found; add at least one row or image")


def read_build_manifest(path: str | Path) -> list[BuildItem]:
    """Rows of a build manifest (paradigm §4: image, map, image_id, category, class_index),
    paths resolved."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
    except OSError as err:
        raise InputError(f"{path}: cannot read the build manifest ({err.strerror}); "
                         "check the path") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 CSV file; save the manifest as UTF-8 CSV") from err
    missing = [c for c in BUILD_MANIFEST_COLUMNS if c != "class_index" and c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; the header must be "
                         f"{','.join(BUILD_MANIFEST_COLUMNS)}")
    items = []
    for line, row in enumerate(rows, start=2):
        where = f"{path} line {line}"
        image_id = (row.get("image_id") or "").strip()
        category = (row.get("category") or "").strip()
        _check_labels(image_id, category, where)
        raw_class = (row.get("class_index") or "").strip()
        class_index = None
        if raw_class:
            if not raw_class.isdigit() or not 0 <= int(raw_class) <= 999:
                raise InputError(f"{where}: class_index {raw_class!r} is not an ImageNet class "
                                 "0-999; fix it or leave the cell empty")
            class_index = int(raw_class)
        image, map_ = (row.get("image") or "").strip(), (row.get("map") or "").strip()
        if not image or not map_:
            raise InputError(f"{where}: empty image or map path; fill both columns")
        items.append(BuildItem(path.parent / image, path.parent / map_, image_id, category,
                               class_index, str(path)))
    _check_unique(items, str(path))
    return items


def items_from_folders(images_dir: str | Path, maps_dir: str | Path) -> list[BuildItem]:
    """Items from images in ``images_dir/animal/`` and ``images_dir/non-animal/``, maps matched
    by file stem.

    Hidden files and folders and files without an image suffix (``IMAGE_SUFFIXES``) are skipped.
    """
    images_dir, maps_dir = Path(images_dir), Path(maps_dir)
    for folder in (images_dir, maps_dir):
        if not folder.is_dir():
            raise InputError(f"{folder}: not a folder; pass an existing folder")
    maps: dict[str, Path] = {}
    for p in sorted(maps_dir.rglob("*")):
        if p.is_file() and p.suffix.lower() in MAP_SUFFIXES:
            if p.stem in maps:
                raise InputError(f"{p}: two maps share the stem {p.stem!r} ({maps[p.stem]}); "
                                 "keep one map per image")
            maps[p.stem] = p
    items = []
    for sub in sorted(p for p in images_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in CATEGORIES:
            raise InputError(f"{sub}: unknown category folder {sub.name!r}; images go in "
                             f"{' and '.join(CATEGORIES)} sub-folders")
        for img in sorted(p for p in sub.iterdir() if p.is_file() and not p.name.startswith(".")
                          and p.suffix.lower() in IMAGE_SUFFIXES):
            _check_labels(img.stem, sub.name, str(img))
            if img.stem not in maps:
                raise InputError(f"{img}: no map named {img.stem}.* ({'/'.join(MAP_SUFFIXES)}) in "
                                 f"{maps_dir}; add its importance map")
            items.append(BuildItem(img, maps[img.stem], img.stem, sub.name, None, str(images_dir)))
    _check_unique(items, str(images_dir))
    return items


# Pillow modes a photograph may have, read as they are (8 bits a channel, or 1 bit).
_EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LA", "PA")


def _high_bit_depth_to_gray8(im: Image.Image, path: Path) -> np.ndarray:
    """A 16-bit, 32-bit integer or float grayscale image scaled to (H, W) uint8, or InputError.

    16-bit values 0..65535 map to 0..255 (value / 257, rounded); a 32-bit integer image is
    taken as 16-bit when its values lie in 0..65535; a float image must lie in 0..1. Any other
    range cannot be told from the file, so it is refused by name.
    """
    arr = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise InputError(f"{path}: floating-point image (mode F) with values outside 0..1 "
                             f"(min {np.nanmin(arr):g}, max {np.nanmax(arr):g}); "
                             "its range cannot be told — save it as an 8- or 16-bit image")
        gray = arr * 255.0
    else:
        if arr.min() < 0 or arr.max() > 65535:
            raise InputError(f"{path}: 32-bit integer image (mode {im.mode}) with values "
                             f"{arr.min():g}..{arr.max():g} outside 0..65535; its range cannot be "
                             "told — save it as an 8- or 16-bit image")
        gray = arr / 257.0
    gray8 = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    transparent = im.info.get("transparency")
    if isinstance(transparent, int):  # a 16-bit grayscale PNG's one transparent value
        gray8[np.asarray(im) == transparent] = 255
    return gray8


def load_image(path: str | Path) -> np.ndarray:
    """A photograph as (H, W, 3) uint8 RGB; transparent parts are composited over white.

    High-bit-depth images are scaled to 8 bits (``_high_bit_depth_to_gray8``; Pillow itself
    reads 16-bit colour PNGs at 8 bits a channel); modes that cannot be are refused by name.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I;16") or im.mode in ("I", "F"):
                return np.repeat(_high_bit_depth_to_gray8(im, path)[..., None], 3, axis=2)
            if im.mode not in _EIGHT_BIT_MODES:
                raise InputError(f"{path}: image mode {im.mode!r} is not supported; save it as "
                                 "8-bit RGB or grayscale (or 16-bit grayscale)")
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                rgba = im.convert("RGBA")
                im = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im.alpha_composite(rgba)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except InputError:
        raise
    except FileNotFoundError as err:
        raise InputError(f"{path}: image not found; check the path") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: cannot read the image ({err}); replace it with a "
                         "JPEG/PNG file Pillow can open") from err


def _read_map_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if len(keys) != 1 and "map" not in keys:
                raise InputError(f"{path}: .npz holds {keys}; store one array, or name it 'map'")
            return z["map" if "map" in keys else keys[0]]
    if suffix in (".png", ".jpg", ".jpeg"):
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I", "F"):
                return np.asarray(im, dtype=np.float64)
            return np.asarray(im.convert("L"), dtype=np.float64)
    raise InputError(f"{path}: unsupported map format {suffix!r}; "
                     f"use one of {', '.join(MAP_SUFFIXES)}")


def load_map(path: str | Path) -> np.ndarray:
    """An importance map as (H, W) float64, checked finite, non-negative and not all zero."""
    path = Path(path)
    try:
        arr = _read_map_array(path)
    except InputError:
        raise
    except FileNotFoundError as err:
        raise InputError(f"{path}: map not found; check the path") from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise InputError(f"{path}: cannot read the map ({err}); replace it with a valid "
                         ".npy/.npz/.png/.jpg file") from err
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise InputError(f"{path}: map has shape {arr.shape}; it must be a 2-D (H, W) array")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"{path}: map has dtype {arr.dtype}; store real numbers")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InputError(f"{path}: map contains NaN or inf; replace them (e.g. by 0) and rebuild")
    if (arr < 0).any():
        raise InputError(f"{path}: map has negative values (min {arr.min():g}); importance must be "
                         ">= 0 (shift or clip the map)")
    if not (arr > 0).any():
        raise InputError(f"{path}: map is all zero, so it ranks no pixel; supply a map with "
                         "some importance")
    return arr


def check_aspect(image: np.ndarray, importance: np.ndarray, map_path: Path,
                 image_path: Path) -> None:
    """Raise InputError when the map's aspect ratio differs from its image's (beyond rounding)."""
    (ih, iw), (mh, mw) = image.shape[:2], importance.shape
    ratio_i, ratio_m = iw / ih, mw / mh
    slack = max(_ASPECT_TOLERANCE, 1.0 / min(mh, mw))
    if abs(ratio_m / ratio_i - 1.0) > slack:
        raise InputError(f"{map_path}: map is {mw}x{mh} (aspect {ratio_m:.3f}) but its image "
                         f"{image_path} is {iw}x{ih} (aspect {ratio_i:.3f}); supply a map of the "
                         "same shape as the image")
