"""Copy a training corpus small enough to travel to a rented GPU (the device runs of patina's defaults).

    python benchmarks/training_pack.py ../shared/corpus .pack/corpus --max-side 288 --quality 85 --val 40

Training images are resized to ``--max-side`` px (long side) and re-encoded as JPEG; the first
``--val`` validation images (sorted, as ``patina train`` takes them) are copied unchanged;
ATTRIBUTION.csv keeps the rows of every file copied, so the model cards still name each
image's licence and author.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import cv2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="folder with train/, val/ and ATTRIBUTION.csv")
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-side", type=int, default=288)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--val", type=int, default=40)
    args = parser.parse_args()
    with open(args.corpus / "ATTRIBUTION.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    (args.out / "train").mkdir(parents=True, exist_ok=True)
    (args.out / "val").mkdir(parents=True, exist_ok=True)
    val = {f"val/{p.name}" for p in sorted((args.corpus / "val").glob("*.jpg"))[: args.val]}
    kept = []
    for row in rows:
        source, target = args.corpus / row["file"], args.out / row["file"]
        if row["file"] in val:
            shutil.copyfile(source, target)
        elif row["file"].startswith("train/"):
            image = cv2.imread(str(source), cv2.IMREAD_COLOR)
            if image is None:
                raise SystemExit(f"{source}: not a readable image")
            h, w = image.shape[:2]
            scale = args.max_side / max(h, w)
            if scale < 1:
                image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
        else:
            continue
        kept.append(row)
    with open(args.out / "ATTRIBUTION.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    print(f"{len(kept)} images -> {args.out}")


if __name__ == "__main__":
    main()
