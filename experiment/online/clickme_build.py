"""``build-clickme``: a ClickMe game site from a build manifest and the partner's ONNX file.

The site is served by ``python -m experiment serve`` like a study site. ``public/`` holds the
page, onnxruntime-web (from node_modules, served locally), the partner and the images, each
framed to 256×256 and named by its position (so a file name tells nothing about the image);
``clickme.json`` (images with their labels, the game's settings) is read by the server only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shlex
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from experiment.online.build import WEB_DIR as STUDY_WEB_DIR
from experiment.online.build import check_title, page_module
from experiment.online.clickme_rules import QUERY_FIELDS, ROUND_FIELDS, GameConfig
from experiment.online.clickme_server import GAME_FILE
from experiment.online.config import SAFE_ID
from stimuli.click_maps import frame_image, read_image_list
from suite.atomic import atomic_write_text
from suite.cli_types import float_in, int_at_least, int_in
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import provenance

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = Path(__file__).resolve().parent / "clickme_web"
OUR_FILES = ("index.html", "clickme.css", "clickme.js", "partner.js")
# the delivery queue is the study page's (one file for both pages)
SHARED_FILES = ("delivery.js",)
# written by the build: the posted round's fields, from clickme_rules.py
PAGE_CONFIG = "game-config.js"
# onnxruntime-web's WebAssembly build (package-lock.json pins it): the script, its loader, the wasm
ORT_FILES = {
    "onnxruntime-web/dist/ort.wasm.min.js": "ort.wasm.min.js",
    "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs": "ort-wasm-simd-threaded.mjs",
    "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm": "ort-wasm-simd-threaded.wasm",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_partner(path: Path) -> None:
    """An ONNX file as export-partner writes it (a protobuf ModelProto starts with ir_version)."""
    if not path.is_file():
        raise InputError(f"--partner {path}: no such file; make one with python -m models "
                         "export-partner --out partner.onnx")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if path.stat().st_size < 1024 or head[:1] != b"\x08":
        raise InputError(f"--partner {path}: not an ONNX model; make one with python -m models "
                         "export-partner --out partner.onnx")


def _png(image: np.ndarray, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(dest, format="PNG")


def build_game(images: Path, out: Path, partner: Path, seconds: float = 7.0, bubble: int = 14,
               per_participant: int | None = None, practice_image: str | None = None,
               title: str = "ClickMe", completion_code: str = "", completion_url: str = "",
               study_id: str | None = None, node_modules: Path | None = None,
               overwrite: bool = False) -> GameConfig:
    """Write the game site to ``out`` atomically; returns its configuration."""
    images, out, partner = Path(images), Path(out), Path(partner)
    check_output_folder(out, inputs=[images, partner], overwrite=overwrite)
    check_partner(partner)
    nm = Path(node_modules) if node_modules else REPO_ROOT / "node_modules"
    missing = [src for src in ORT_FILES if not (nm / src).is_file()]
    if missing:
        raise InputError(f"{nm}: onnxruntime-web files missing ({missing[0]} …); run "
                         "`make web-deps` (npm ci) in the repository root")
    entries = read_image_list(images)
    ids = [e.image_id for e in entries]
    practice_id = practice_image or ids[0]
    if practice_id not in ids:
        raise InputError(f"--practice-image {practice_id!r} is not an image_id of {images}")
    pool = [e for e in entries if e.image_id != practice_id]
    if not pool:
        raise InputError(f"{images}: one image only; the game needs one for the practice round "
                         "and at least one to collect clicks on")
    n = len(pool) if per_participant is None else per_participant
    if n > len(pool):
        raise InputError(f"--per-participant {n}: only {len(pool)} images to play "
                         f"({images} less the practice image {practice_id!r})")
    framed = {e.image_id: frame_image(e.image) for e in entries}   # InputError names a bad file
    site_images, practice = [], {}
    with building_folder(out, "experiment build-clickme") as tmp:
        public = tmp / "public"
        (public / "vendor" / "ort").mkdir(parents=True)
        for src, name in ORT_FILES.items():
            shutil.copyfile(nm / src, public / "vendor" / "ort" / name)
        for name in OUR_FILES:
            shutil.copyfile(WEB_DIR / name, public / name)
        for name in SHARED_FILES:
            shutil.copyfile(STUDY_WEB_DIR / name, public / name)
        atomic_write_text(public / PAGE_CONFIG, page_module(
            {"round_fields": sorted(ROUND_FIELDS), "query_fields": sorted(QUERY_FIELDS)},
            "experiment/online/clickme_rules.py (ROUND_FIELDS, QUERY_FIELDS)"))
        shutil.copyfile(partner, public / "partner.onnx")
        for k, e in enumerate(entries):
            url = "practice.png" if e.image_id == practice_id else f"images/{k:05d}.png"
            _png(framed[e.image_id], public / url)
            item = {"image_id": e.image_id, "url": url, "category": e.category,
                    "class_index": e.class_index}
            if e.image_id == practice_id:
                practice = {k2: v for k2, v in item.items() if k2 != "image_id"}
            else:
                site_images.append(item)
        cfg = GameConfig(study_id=study_id or secrets.token_hex(4), seconds=seconds,
                         bubble=bubble, per_participant=n, title=title,
                         completion_code=completion_code, completion_url=completion_url,
                         partner={"url": "partner.onnx", "sha256": _sha256(partner)},
                         practice=practice, images=tuple(site_images))
        atomic_write_text(tmp / GAME_FILE, json.dumps(cfg.to_json(), indent=1))
        atomic_write_text(tmp / "provenance.json", json.dumps(provenance(
            images=str(images), partner=str(partner), practice_image=practice_id,
            game=cfg.to_json()), indent=2, default=str))
    return cfg


def add_arguments(parser) -> None:
    parser.add_argument("--images", required=True, type=Path,
                        help="build manifest (image, image_id, category, class_index; "
                             "map not needed)")
    parser.add_argument("--out", required=True, type=Path, help="output folder: the site to write")
    parser.add_argument("--partner", required=True, type=Path,
                        help="the partner's ONNX file (python -m models export-partner)")
    parser.add_argument("--seconds", type=float_in(1, 60), default=7.0,
                        help="time per image, seconds (default 7, as ClickMe)")
    parser.add_argument("--bubble", type=int_in(2, 64), default=14,
                        help="bubble side, px of the 256-px image (default 14, as ClickMe)")
    parser.add_argument("--per-participant", type=int_at_least(1), default=None,
                        help="images each participant plays (default: all but the practice one)")
    parser.add_argument("--practice-image", default=None,
                        help="image_id of the practice round's image, left out of the collection "
                             "(default: the manifest's first)")
    parser.add_argument("--title", default="ClickMe", help="the page's title (default %(default)s)")
    parser.add_argument("--completion-code", default="", help="code shown at the end")
    parser.add_argument("--completion-url", default="",
                        help="URL the page goes to at the end (e.g. Prolific's completion URL)")
    parser.add_argument("--study-id", default=None, help="id of this study (default: random)")
    parser.add_argument("--node-modules", type=Path, default=None,
                        help="folder holding onnxruntime-web (default: the repository's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing site")


def main(args) -> int:
    if args.study_id is not None and not SAFE_ID.match(args.study_id):
        raise InputError(f"--study-id {args.study_id!r}: use 1-64 letters, digits, '_', '.', '-'")
    if args.completion_url and not args.completion_url.startswith(("https://", "http://")):
        raise InputError(f"--completion-url {args.completion_url!r} must start with https://")
    cfg = build_game(args.images, args.out, args.partner, args.seconds, args.bubble,
                     args.per_participant, args.practice_image, check_title(args.title),
                     args.completion_code, args.completion_url, args.study_id,
                     args.node_modules, args.overwrite)
    print(f"wrote {args.out} ({len(cfg.images)} images, {cfg.per_participant} per participant); "
          f"serve it with: python -m experiment serve {shlex.quote(str(args.out))} "
          "--db game.sqlite")
    return 0
