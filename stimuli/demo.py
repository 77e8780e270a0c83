"""The built-in demo: scikit-image's sample photographs with suite-derived (not human)
importance maps."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.data import data_dir

from stimuli.derived_maps import contrast_saliency
from stimuli.schema import BUILD_MANIFEST_COLUMNS
from suite.cli_types import int_at_least
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder

MAPS_NOTE = ("NOT HUMAN MAPS: demo importance maps derived by the suite from each photograph "
             "(multi-scale centre-surround CIELAB colour contrast, stimuli/derived_maps.py), "
             "standing in for ClickMe/Clicktionary maps")

# (image_id, file in scikit-image's data folder, category, ImageNet class or None, augmentation).
# scikit-image ships one animal photograph (Chelsea the cat) and a horse silhouette; the
# animal half is completed with a mirror image and a crop of the cat, the non-animal half
# with a mirrored coffee cup, so that both categories have four items.
DEMO_IMAGES = (
    ("chelsea", "chelsea.png", "animal", 281, None),                 # tabby cat
    ("chelsea_mirrored", "chelsea.png", "animal", 281, "mirror"),
    ("chelsea_face", "chelsea.png", "animal", 281, "face_crop"),
    ("horse_silhouette", "horse.png", "animal", None, None),         # a drawing, no ImageNet class
    ("coffee", "coffee.png", "non-animal", 967, None),               # espresso
    ("coffee_mirrored", "coffee.png", "non-animal", 967, "mirror"),
    ("rocket", "rocket.jpg", "non-animal", None, None),
    ("motorcycle", "motorcycle_left.png", "non-animal", None, None),
)
_MAP_SHORT_SIDE = 128  # maps stored at half the canvas resolution, as ClickMe-style maps often are


def _augment(image: Image.Image, how: str | None) -> Image.Image:
    if how == "mirror":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if how == "face_crop":  # the cat's head in chelsea.png (451 x 300)
        return image.crop((120, 0, 400, 240))
    return image


def write_demo_inputs(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write demo images, derived maps and a build manifest into ``out_dir``; returns the
    manifest path.

    A non-empty ``out_dir`` needs ``overwrite`` and is replaced only if the suite made it
    (``suite.outputs``); the folder is written aside and swapped in when complete.
    """
    out = check_output_folder(out_dir, overwrite=overwrite)
    source = Path(data_dir)
    with building_folder(out, "stimuli demo") as tmp:
        (tmp / "images").mkdir()
        (tmp / "maps").mkdir()
        rows = []
        for image_id, name, category, class_index, how in DEMO_IMAGES:
            path = source / name
            if not path.is_file():
                raise InputError(f"{path}: scikit-image sample photograph missing; reinstall "
                                 "scikit-image (pinned in requirements.txt)")
            with Image.open(path) as im:
                im.load()
                rgba = im.convert("RGBA")
            flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            flat.alpha_composite(rgba)
            photo = _augment(flat.convert("RGB"), how)
            buf = io.BytesIO()
            photo.save(buf, format="PNG")
            (tmp / "images" / f"{image_id}.png").write_bytes(buf.getvalue())
            w, h = photo.size
            scale = _MAP_SHORT_SIDE / min(w, h)
            small = photo.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
            np.save(tmp / "maps" / f"{image_id}.npy", contrast_saliency(np.asarray(small)))
            rows.append({"image": f"images/{image_id}.png", "map": f"maps/{image_id}.npy",
                         "image_id": image_id, "category": category,
                         "class_index": "" if class_index is None else class_index})
        with open(tmp / "build_manifest.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=BUILD_MANIFEST_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "README.txt").write_text(MAPS_NOTE + ".\nImages: scikit-image sample data "
                                        f"({source}); mirrored/cropped copies as named.\n")
    return out / "build_manifest.csv"


def add_arguments(parser) -> None:
    """CLI options of ``python -m stimuli demo``."""
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder for the demo set (its inputs go to OUT-inputs/)")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
                        help="set seed, below 2**63 (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT and OUT-inputs/ if this suite made them")
    parser.add_argument("--workers", type=int_at_least(1), default=None,
                        help="processes (default: all cores)")


def main(args) -> int:
    """Run ``python -m stimuli demo``: inputs into OUT-inputs/, the set into OUT/."""
    from stimuli.build import build_stimulus_set
    from stimuli.config import BuildConfig
    from stimuli.manifest import read_stimulus_manifest

    out = Path(args.out)
    inputs = out.parent / f"{out.name}-inputs"
    # Both folders are checked before either is written: neither is replaced unless
    # --overwrite is given and the suite made it.
    check_output_folder(out, overwrite=args.overwrite)
    check_output_folder(inputs, overwrite=args.overwrite)
    manifest = write_demo_inputs(inputs, overwrite=args.overwrite)
    print(MAPS_NOTE)
    config = BuildConfig(seed=args.seed, maps_note=MAPS_NOTE)
    build_stimulus_set(manifest, out, config, overwrite=args.overwrite, workers=args.workers)
    rows = read_stimulus_manifest(out)
    print(f"demo inputs: {inputs}\nwrote {len(rows)} stimuli of {len(DEMO_IMAGES)} images to {out}"
          f"\ncontact sheet: {out / 'contact_sheet.png'}")
    return 0
