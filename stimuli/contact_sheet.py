"""A contact sheet of a stimulus set: images as rows, levels as columns, labelled, for a quick
look."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from suite.atomic import atomic_write_bytes

LABEL_W, HEADER_H, PAD = 150, 22, 4


def _pick_images(rows: list[dict], max_images: int) -> list[str]:
    """Up to ``max_images`` image ids, alternating animal / non-animal, in manifest order."""
    by_cat: dict[str, list[str]] = {}
    for r in rows:
        ids = by_cat.setdefault(r["category"], [])
        if r["image_id"] not in ids:
            ids.append(r["image_id"])
    picked, queues = [], [list(v) for _, v in sorted(by_cat.items())]
    while len(picked) < max_images and any(queues):
        for q in queues:
            if q and len(picked) < max_images:
                picked.append(q.pop(0))
    return picked


def write_contact_sheet(set_dir: str | Path, out_path: str | Path, rows: list[dict] | None = None,
                        max_images: int = 12, thumb: int = 128, title: str = "") -> Path:
    """Write a PNG grid (images x levels) of a set's stimuli; ``rows`` default to its manifest.

    ``title`` (e.g. "NOT HUMAN MAPS") is printed in red in the top-left corner.
    """
    set_dir = Path(set_dir)
    if rows is None:
        from stimuli.manifest import read_stimulus_manifest
        rows = read_stimulus_manifest(set_dir)
    ids = _pick_images(rows, max_images)
    levels = sorted({int(r["level_index"]) for r in rows})
    cell = {(r["image_id"], int(r["level_index"])): r for r in rows}
    width = LABEL_W + len(levels) * (thumb + PAD)
    height = HEADER_H + len(ids) * (thumb + PAD)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    if title:
        draw.text((4, 4), title[:24], fill="red", font=font)
    for j, level in enumerate(levels):
        any_row = next(r for r in rows if int(r["level_index"]) == level)
        pct = any_row["level_percent"]
        label = "full image" if pct in ("", None) else f"{float(pct):.3g} %"
        draw.text((LABEL_W + j * (thumb + PAD) + 4, 4), label, fill="black", font=font)
    for i, image_id in enumerate(ids):
        y = HEADER_H + i * (thumb + PAD)
        first = cell[(image_id, levels[0])] if (image_id, levels[0]) in cell else None
        draw.text((4, y + thumb // 2 - 12), image_id[:22], fill="black", font=font)
        if first is not None:
            draw.text((4, y + thumb // 2 + 2), first["category"], fill="gray", font=font)
        for j, level in enumerate(levels):
            r = cell.get((image_id, level))
            if r is None:
                continue
            with Image.open(set_dir / r["file"]) as im:
                tile = im.convert("RGB").resize((thumb, thumb), Image.Resampling.BILINEAR)
            sheet.paste(tile, (LABEL_W + j * (thumb + PAD), y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", compress_level=6)
    return atomic_write_bytes(out_path, buf.getvalue())
