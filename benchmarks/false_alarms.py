"""False-alarm benchmark: what detect + inpaint do to pictures that need no repair.

Two sets, each run as a pipeline runs it (the detector on the whole picture, its mask filled by
the inpainter):

- **clean photographs**: the corpus ``val`` photographs (colour, undamaged). Printed per
  detector: the fraction of pixels marked (mean, 90th percentile, worst) and the change detect +
  inpaint makes to the photograph (PSNR and SSIM of the output against the input);
- **content that looks like damage**: boxes on real prints of ``../shared/real-photos/`` and on
  corpus photographs (``real_damage/content.csv``: file, git blob sha1, box, kind) around
  handwriting, inscriptions, printed captions, stamps and thin objects (a cigarette, a watch
  chain, cables, wheel spokes, a chain-link fence). Printed per box and kind: the fraction of
  its pixels the stages changed (any channel by more than 2/255). The target is at most 1 %:
  writing on a print is part of the object.

    python benchmarks/false_alarms.py [--detector ID ...] [--inpainter ID] [--count N] [--catalogue TOML] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from patina.models.metrics import psnr, ssim
from patina.models.registry import DEFAULT_MODELS, installed, load_extensions
from patina.models.stage import StageInput

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
CONTENT = HERE / "real_damage" / "content.csv"
CHANGED = 2.0 / 255.0  # a pixel counts as changed when any channel moved by more than this


def detect_and_fill(picture: np.ndarray, detector, inpainter) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, output)`` of the detector on the whole picture and the inpainter on its mask."""
    mask = detector.process(StageInput(picture)).mask
    if mask is None or not mask.any():
        return np.zeros(picture.shape[:2], bool), picture
    return mask, inpainter.process(StageInput(picture, mask=mask)).image


def clean_photographs(paths: list[Path], detector, inpainter) -> dict:
    from assess import decode

    marked, psnrs, ssims = [], [], []
    for path in paths:
        picture = decode(path)
        mask, out = detect_and_fill(picture, detector, inpainter)
        marked.append(float(mask.mean()))
        psnrs.append(min(psnr(out, picture), 99.0))
        ssims.append(ssim(out, picture))
    return {
        "photos": len(paths),
        "marked_mean": float(np.mean(marked)),
        "marked_p90": float(np.percentile(marked, 90)),
        "marked_max": float(np.max(marked)),
        "psnr_mean": float(np.mean(psnrs)),
        "psnr_min": float(np.min(psnrs)),
        "ssim_mean": float(np.mean(ssims)),
    }


def content_boxes(photos: Path, corpus: Path, detector, inpainter) -> list[dict]:
    from assess import decode

    with open(CONTENT, newline="") as handle:
        boxes = list(csv.DictReader(handle))
    rows, done = [], {}
    for box in boxes:
        if box["file"] not in done:
            folder = corpus if box["source"] == "corpus" else photos
            picture = decode(folder / box["file"], box["blob_sha1"])
            done = {box["file"]: (picture, *detect_and_fill(picture, detector, inpainter))}
        picture, mask, out = done[box["file"]]
        x, y, w, h = (int(box[k]) for k in "xywh")
        region = (slice(y, y + h), slice(x, x + w))
        changed = np.abs(out[region] - picture[region]).max(axis=2) > CHANGED
        rows.append({"id": box["id"], "kind": box["kind"], "marked": float(mask[region].mean()),
                     "changed": float(changed.mean())})  # fmt: skip
    return rows


def main() -> None:
    import sys

    sys.path.insert(0, str(HERE))
    from variants import build_variant

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=SHARED / "real-photos" / "images")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument(
        "--detector", nargs="*", default=None, help="detector ids or ID:key=value variants (default: every installed)"
    )
    parser.add_argument("--inpainter", default=DEFAULT_MODELS["inpaint"])
    parser.add_argument("--count", type=int, default=10_000, help="clean photographs at most")
    parser.add_argument("--catalogue", action="append", default=[], help="register a trained model's catalogue")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for catalogue in args.catalogue:
        load_extensions(catalogues=[catalogue])
    detectors = args.detector or installed("detect_damage")
    inpainter = build_variant(args.inpainter)
    paths = sorted((args.corpus / "val").glob("*.jpg"))[: args.count]
    results = {}
    for model in detectors:
        detector = build_variant(model)
        clean = clean_photographs(paths, detector, inpainter)
        boxes = content_boxes(args.photos, args.corpus, detector, inpainter)
        results[model] = {"clean": clean, "content": boxes}
        print(
            f"\n{model} + {args.inpainter}\nclean photographs ({clean['photos']}): pixels marked mean "
            f"{clean['marked_mean']:.3%}, p90 {clean['marked_p90']:.3%}, worst {clean['marked_max']:.2%} "
            f"(target <= 0.3 %); after detect + inpaint PSNR {clean['psnr_mean']:.1f} dB "
            f"(worst {clean['psnr_min']:.1f}),"
            f" SSIM {clean['ssim_mean']:.4f}"
        )
        by_kind = defaultdict(list)
        for row in boxes:
            by_kind[row["kind"]].append(row)
        print("content that looks like damage (pixels changed; target <= 1 %):")
        for kind, rows in sorted(by_kind.items()):
            worst = max(rows, key=lambda r: r["changed"])
            print(
                f"  {kind:16} {len(rows):>2} boxes: mean {np.mean([r['changed'] for r in rows]):.2%}, "
                f"worst {worst['changed']:.2%} ({worst['id']}); over 1 %: {sum(r['changed'] > 0.01 for r in rows)}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
