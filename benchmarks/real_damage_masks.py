"""Draw and review the masks of the real-damage set (``benchmarks/real_damage/``).

The masks were made semi-automatically, one crop at a time: a candidate from the crop's own
local-contrast residual (luma minus its median over ``k`` px, on the side given by
``polarity``, above ``t`` and ``z`` times the local residual spread, hysteresis to half the
level), components under ``min_area`` px or shorter than ``min_length`` px dropped, boxes of
picture content the candidate caught by mistake excluded, then grown by ``grow`` px; every
mask was checked on the review sheet this script writes and its parameters corrected until
it covered the damage seen and nothing else. The parameters stay in ``crops.csv`` beside the
masks, so a mask can be redrawn and argued with. This is an annotation tool, not a detector:
each crop has its own parameters, chosen by eye.

    python benchmarks/real_damage_masks.py draw [--only ID ...]   # (re)write masks/ID.png
    python benchmarks/real_damage_masks.py sheet OUT.png [--only ID ...]   # crops, masks overlaid
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from real_damage import CROPS, MASKS, Crop, load_crops, load_mask

from patina.models.damage_textures import median_residual
from patina.models.specks import component_shapes
from patina.models.training_tasks import grow

SHEET_CELL = 256


def _boxes(text: str) -> list[tuple[int, int, int, int]]:
    return [tuple(int(v) for v in box.split(":")) for box in text.split("|") if box]


def candidate_mask(image: np.ndarray, crop: Crop) -> np.ndarray:
    """The crop's damage mask from its annotation parameters (see the module docstring)."""
    p = crop.params
    gray = image.mean(axis=2)
    residual = median_residual(gray, int(p.get("k", 15)))
    polarity = p.get("polarity", "both")
    signed = {"bright": residual, "dark": -residual, "both": np.abs(residual)}[polarity]
    spread = cv2.blur(np.abs(residual), (31, 31)) + 1e-3
    t, z = float(p.get("t", 0.08)), float(p.get("z", 0.0))
    strong = (signed > t) & (signed > z * spread)
    weak = (signed > 0.5 * t) & (signed > 0.5 * z * spread)
    count, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[np.unique(labels[strong])] = True
    seeded[0] = False
    mask = seeded[labels]
    if mask.any():
        labels, area, length = component_shapes(mask)
        keep = (area >= int(p.get("min_area", 3))) & (length >= int(p.get("min_length", 0)))
        keep[0] = False
        mask = keep[labels]
    for x0, y0, x1, y1 in _boxes(p.get("exclude", "")):
        mask[y0:y1, x0:x1] = False
    for x0, y0, x1, y1 in _boxes(p.get("include", "")):  # whole regions of missing paper (tears)
        region = np.zeros_like(mask)
        region[y0:y1, x0:x1] = True
        level = float(p.get("region_level", 0.0))
        mask |= region & ((gray > level) if level >= 0 else (gray < -level))
    return grow(mask, int(p.get("grow", 1)))


def review_sheet(items: list[tuple[Crop, np.ndarray, np.ndarray]], path: Path, columns: int = 3) -> None:
    """Each crop beside itself with the mask in red, enlarged to ``SHEET_CELL`` px, labelled."""
    cell_w, cell_h = 2 * SHEET_CELL + 8, SHEET_CELL + 16
    rows = -(-len(items) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (crop, image, mask) in enumerate(items):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        overlay = image.copy()
        overlay[mask] = 0.35 * overlay[mask] + 0.65 * np.array([1.0, 0.0, 0.0])
        for j, picture in enumerate((image, overlay)):
            tile = Image.fromarray(np.rint(picture * 255).astype(np.uint8))
            sheet.paste(tile.resize((SHEET_CELL, SHEET_CELL), Image.Resampling.NEAREST), (x + j * SHEET_CELL, y))
        draw.text((x, y + SHEET_CELL + 2), f"{crop.id} [{crop.kind}, {crop.split}] {mask.mean():.1%}", fill="black")
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["draw", "sheet"])
    parser.add_argument("sheet", nargs="?", type=Path, help="sheet: PNG to write")
    parser.add_argument("--only", nargs="*", default=None, help="crop ids (default: all)")
    parser.add_argument("--candidates", action="store_true", help="sheet: redraw from the parameters")
    args = parser.parse_args()
    crops = [c for c in load_crops() if args.only is None or c.id in args.only]
    items = []
    for crop in crops:
        image = crop.cut()
        if args.action == "draw":
            mask = candidate_mask(image, crop)
            Image.fromarray(mask.astype(np.uint8) * 255).convert("1").save(MASKS / f"{crop.id}.png", optimize=True)
        else:
            mask = candidate_mask(image, crop) if args.candidates else load_mask(crop)
        items.append((crop, image, mask))
    if args.action == "sheet":
        review_sheet(items, args.sheet)
    print(f"{len(items)} crops ({CROPS})")


if __name__ == "__main__":
    main()
