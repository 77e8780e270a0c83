"""``python -m stimuli simulate-clicks``: a clicks CSV from SIMULATED players, to try the map loop.

Before anyone has played the ClickMe game, a lab can walk the whole loop — clicks → maps →
stimuli → people and models — on its own images with SIMULATED players (nothing human):
each player paints like the game's players (stimuli.simulated_players) over a hidden
"true" map, which is the build manifest's own map where it names one, otherwise the
photograph's colour-contrast saliency (stimuli.derived_maps). Every player id starts
with ``SIMULATED-``, and ``stimuli maps`` labels maps made from such clicks NOT HUMAN.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from stimuli.click_maps import CLICKS_COLUMNS, FRAME, frame_image, read_image_list
from stimuli.derived_maps import contrast_saliency
from stimuli.io import load_map
from stimuli.simulated_players import simulate_clicks
from suite.atomic import atomic_write_text
from suite.cli_types import int_at_least, int_in
from suite.errors import InputError
from suite.outputs import check_output_file


def _map_column(manifest: Path) -> dict[str, Path]:
    with open(manifest, newline="", encoding="utf-8-sig") as fh:
        return {r["image_id"].strip(): manifest.parent / r["map"].strip()
                for r in csv.DictReader(fh) if (r.get("map") or "").strip()}


def hidden_maps(manifest: Path, truth: str) -> dict[str, np.ndarray]:
    """{image_id: (256, 256) float map} the SIMULATED players follow, framed as the game frames."""
    entries = read_image_list(manifest)
    maps = _map_column(manifest) if truth == "manifest" else {}
    if truth == "manifest" and len(maps) < len(entries):
        missing = sorted({e.image_id for e in entries} - set(maps))
        raise InputError(f"{manifest}: no map for {missing[0]!r} ({len(missing)} image(s)); "
                         "fill the map column or pass --truth contrast")
    out = {}
    for e in entries:
        if truth == "manifest":
            m = load_map(maps[e.image_id]).astype(np.float32)
            # the whole map to the game's frame, as the whole photograph is (no crop)
            m = np.asarray(Image.fromarray(m).resize((FRAME, FRAME), Image.Resampling.BILINEAR))
            out[e.image_id] = m / m.max()
        else:
            out[e.image_id] = contrast_saliency(frame_image(e.image))
    return out


def add_arguments(parser) -> None:
    parser.add_argument("--images", type=Path, required=True,
                        help="build manifest (image, image_id, category[, class_index, map])")
    parser.add_argument("--out", type=Path, required=True,
                        help="output file: the clicks CSV (docs/maps.md)")
    parser.add_argument("--players", type=int_in(1, 10000), default=20,
                        help="SIMULATED players, each playing every image once (default 20)")
    parser.add_argument("--truth", choices=("manifest", "contrast"), default="manifest",
                        help="the hidden map players follow: the manifest's map column (default) "
                             "or the photograph's colour contrast")
    parser.add_argument("--seed", type=int_at_least(0), default=0)


def main(args) -> int:
    if not args.images.is_file():
        raise InputError(f"{args.images}: build manifest not found; check the path")
    out = check_output_file(args.out, inputs=[args.images])
    rows = simulate_clicks(hidden_maps(args.images, args.truth), args.players, args.seed)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CLICKS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out, buf.getvalue())
    print(f"wrote {len(rows)} rounds of {args.players} SIMULATED players (not human) to {out}")
    return 0
