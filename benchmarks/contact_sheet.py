"""Before/after contact sheet of a restored collection: each master beside its derivative.

    python benchmarks/contact_sheet.py examples/collection/manifest.csv out/sample docs/contact-sheet.png

Reads the provenance log under OUTPUT for the derivative of every item and labels each pair
with the item id and the steps that changed it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw

from patina.manifests.provenance import read_provenance
from patina.manifests.readers import read_manifest

THUMB = 240
LABEL = 16


def _thumb(path: str) -> Image.Image:
    image = Image.open(path).convert("RGB")
    image.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("output", help="the restored collection (holds _provenance/)")
    parser.add_argument("sheet", type=Path, help="PNG to write")
    parser.add_argument("--columns", type=int, default=3, help="pairs per row")
    args = parser.parse_args()

    rows = read_provenance(str(Path(args.output).resolve())).to_pylist()
    latest: dict[str, dict] = {}
    changed: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: r["run_id"]):
        if row["stage"] == "write" and row["status"] == "ok":
            latest[row["item_id"]] = row
        elif row["status"] == "ok" and row["stage"] not in ("read", "write", "assess", "detect_damage"):
            steps = changed.setdefault((row["run_id"], row["item_id"]), [])
            extra = json.loads(row["decisions"] or "{}")
            steps.append(row["stage"] + (f" ({extra['restored']} face)" if "restored" in extra else ""))
    items = [item for item in read_manifest(args.manifest) if item.item_id in latest]
    cell_w, cell_h = 2 * THUMB + 12, THUMB + 2 * LABEL + 8
    columns = min(args.columns, len(items))
    sheet = Image.new("RGB", (columns * cell_w, -(-len(items) // columns) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for index, item in enumerate(items):
        x, y = (index % columns) * cell_w, (index // columns) * cell_h
        write = latest[item.item_id]
        sheet.paste(_thumb(item.source_uri), (x + 4, y + 4))
        sheet.paste(_thumb(write["output_uri"]), (x + THUMB + 8, y + 4))
        steps = changed.get((write["run_id"], item.item_id), [])
        draw.text((x + 4, y + THUMB + 6), f"{item.item_id}: master | restored", fill="black")
        draw.text((x + 4, y + THUMB + 6 + LABEL), ", ".join(steps) or "unchanged", fill=(90, 90, 90))
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.sheet, optimize=True)
    print(f"{args.sheet}: {len(items)} items")


if __name__ == "__main__":
    main()
