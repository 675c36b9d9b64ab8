"""Real-damage benchmark: detectors and inpainters on crops of real old prints.

The crops are cut from ``../shared/real-photos/`` (real historical prints; development and
evaluation only, never in this repository) by the recipe in ``real_damage/crops.csv``: file,
its git blob sha1 (checked), box, damage kind and split. Their damage masks
(``real_damage/masks/ID.png``) were drawn per crop and checked by eye
(``benchmarks/real_damage_masks.py``). Crops of split ``val`` come from prints that no
training run sees (``real_damage_textures`` harvests only ``dev``).

Printed per damage kind and split:

- every detector's pixel precision / recall / F1 within 2 px of the reference mask (the detector
  runs on the whole print, its mask is cut to the crop);
- after the detector's mask is filled by each inpainter: the damage energy left inside the
  reference mask (the squared residual of luma against its 15 px median, after over before:
  0 is all gone) and the change outside the reference mask (PSNR of the output against the
  input there, dB; higher is less change, inf is none).

    python benchmarks/real_damage.py [--photos ../shared/real-photos/images] [--split all|dev|val]
        [--detector ID ...] [--inpainter ID ...] [--catalogue TOML] [--json OUT]
    python benchmarks/real_damage.py --textures .pack/textures.npz   # bank for patina train --textures
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent / "real_damage"
CROPS = HERE / "crops.csv"
MASKS = HERE / "masks"
PHOTOS = Path(os.environ.get("PATINA_REAL_PHOTOS", Path(__file__).resolve().parents[2] / "shared/real-photos/images"))
KINDS = ("crack", "scratch", "tear", "spots")


@dataclass(frozen=True)
class Crop:
    id: str
    file: str
    blob_sha1: str
    x: int
    y: int
    w: int
    h: int
    kind: str
    split: str
    params: dict[str, str] = field(default_factory=dict)

    def cut(self, photos: Path = PHOTOS) -> np.ndarray:
        """The crop as a working float32 RGB image, after checking the file is the recorded blob."""
        data = (photos / self.file).read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if blob != self.blob_sha1:
            raise ValueError(f"{self.id}: {photos / self.file} is not blob {self.blob_sha1} (got {blob})")
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255.0
        piece = image[self.y : self.y + self.h, self.x : self.x + self.w]
        if piece.shape[:2] != (self.h, self.w):
            raise ValueError(f"{self.id}: box {self.x},{self.y} {self.w}x{self.h} leaves {self.file} {image.shape}")
        return np.ascontiguousarray(piece)


def load_crops(path: Path = CROPS) -> list[Crop]:
    crops = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            params = dict(kv.split("=", 1) for kv in row["params"].split(";") if kv)
            crop = Crop(
                row["id"], row["file"], row["blob_sha1"], int(row["x"]), int(row["y"]), int(row["w"]),
                int(row["h"]), row["kind"], row["split"], params,
            )  # fmt: skip
            if crop.kind not in KINDS or crop.split not in ("dev", "val"):
                raise ValueError(f"{path}: crop {crop.id}: kind {crop.kind!r} / split {crop.split!r} unknown")
            crops.append(crop)
    return crops


def load_mask(crop: Crop) -> np.ndarray:
    mask = np.asarray(Image.open(MASKS / f"{crop.id}.png").convert("L")) > 127
    if mask.shape != (crop.h, crop.w):
        raise ValueError(f"{crop.id}: mask {mask.shape} does not fit the crop {crop.h}x{crop.w}")
    return mask


def damage_energy(image: np.ndarray, region: np.ndarray) -> float:
    """Sum over ``region`` of the squared residual of luma against its 15 px median: what a crack,
    scratch or spot adds to the picture around it."""
    from patina.models.damage_textures import median_residual

    return float((median_residual(image.mean(axis=2), 15)[region] ** 2).sum())


def whole_print(file: str, photos: Path = PHOTOS) -> np.ndarray:
    return np.asarray(Image.open(photos / file).convert("RGB"), np.float32) / 255.0


def evaluate(crops, detectors: list[str], inpainters: list[str], photos: Path = PHOTOS) -> list[dict]:
    """One row per (crop, detector, inpainter): mask hits and the fill's effect (see the module docstring).

    Each detector runs once on the whole print, as a pipeline runs it (its context and its rules, such as
    the size of a region relative to the image, are those of the print), and its mask is cut to each crop;
    the inpainter fills the crop. The detector ``reference`` is the reference mask itself (the inpainter
    alone)."""
    from variants import build_variant

    from patina.models.metrics import psnr
    from patina.models.stage import StageInput
    from patina.models.training_tasks import grow

    stages = {model: build_variant(model) for model in [*detectors, *inpainters]}
    rows, current, masks = [], None, {}
    for crop in sorted(crops, key=lambda c: c.file):
        image, truth = crop.cut(photos), load_mask(crop)
        if crop.file != current:
            picture, current = whole_print(crop.file, photos), crop.file
            masks = {model: stages[model].process(StageInput(picture)).mask for model in detectors}
        outside = ~grow(truth, 2)
        before = damage_energy(image, truth)
        found_masks = {"reference": truth}
        for model in detectors:
            found_masks[model] = masks[model][crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]
        for detector, found in found_masks.items():
            tol = 2
            hit_found = found & grow(truth, tol)
            hit_truth = truth & grow(found, tol)
            base = {"crop": crop.id, "kind": crop.kind, "split": crop.split, "detector": detector,
                    "found": int(found.sum()), "found_hit": int(hit_found.sum()), "truth": int(truth.sum()),
                    "truth_hit": int(hit_truth.sum()), "energy_before": before}  # fmt: skip
            for inpainter in inpainters:
                out = stages[inpainter].process(StageInput(image, mask=found)).image if found.any() else image
                rows.append(
                    {**base, "inpainter": inpainter, "energy_after": damage_energy(out, truth),
                     "psnr_outside": min(psnr(out, image, outside), 99.0)}
                )  # fmt: skip
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per (split, kind, detector, inpainter): pooled precision / recall within 2 px, energy left, change outside."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        for kind in (row["kind"], "all"):
            groups.setdefault((row["split"], kind, row["detector"], row["inpainter"]), []).append(row)
    out = []
    for (split, kind, detector, inpainter), members in sorted(groups.items()):
        precision = sum(r["found_hit"] for r in members) / max(1, sum(r["found"] for r in members))
        recall = sum(r["truth_hit"] for r in members) / max(1, sum(r["truth"] for r in members))
        left = sum(r["energy_after"] for r in members) / max(1e-9, sum(r["energy_before"] for r in members))
        out.append(
            {"split": split, "kind": kind, "detector": detector, "inpainter": inpainter, "crops": len(members),
             "precision": round(precision, 3), "recall": round(recall, 3),
             "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 3),
             "energy_left": round(left, 3),
             "psnr_outside": round(float(np.mean([r["psnr_outside"] for r in members])), 2)}
        )  # fmt: skip
    return out


def write_textures(path: Path, photos: Path = PHOTOS) -> int:
    """Harvest the damage textures of the ``dev`` crops (never ``val``) into a bank for training."""
    from patina.models.damage_textures import harvest, save_textures

    textures = [t for c in load_crops() if c.split == "dev" for t in harvest(c.cut(photos), load_mask(c))]
    save_textures(path, textures)
    return len(textures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--textures", type=Path, help="instead: write the dev crops' damage textures (.npz) here")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--split", choices=["all", "dev", "val"], default="all")
    parser.add_argument("--detector", nargs="*", default=None, help="detector model ids (default: every installed one)")
    parser.add_argument("--inpainter", nargs="*", default=["patina/inpaint-unet@1", "classical/telea-inpaint@1"])
    parser.add_argument("--catalogue", action="append", default=[], help="register a trained model's catalogue")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()

    if args.textures:
        print(f"{write_textures(args.textures, args.photos)} textures from the dev crops -> {args.textures}")
        return
    from patina.models.registry import installed, load_extensions

    for catalogue in args.catalogue:
        load_extensions(catalogues=[catalogue])
    detectors = args.detector or installed("detect_damage")
    crops = [c for c in load_crops() if args.split in ("all", c.split)]
    summary = summarize(evaluate(crops, detectors, args.inpainter, args.photos))
    print(
        f"{'split':5} {'kind':8} {'detector':36} {'inpainter':26} {'n':>3} {'P@2':>6} {'R@2':>6} {'F1':>6} "
        f"{'E left':>7} {'PSNR out':>8}"
    )
    for s in summary:
        print(
            f"{s['split']:5} {s['kind']:8} {s['detector']:36} {s['inpainter']:26} {s['crops']:>3} "
            f"{s['precision']:>6.3f} {s['recall']:>6.3f} {s['f1']:>6.3f} "
            f"{s['energy_left']:>7.3f} {s['psnr_outside']:>8.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
