"""Colour that never hurts: the colorize stage on real monochrome prints and on gray photographs.

Real prints (``../shared/real-photos/``, monochrome by SOURCES.csv's measured tone, early colour
plates left out; no reference colours exist): chroma blotchiness over the print's smooth regions
(mean local a*b* standard deviation, CIELAB units), the share of clear green or blue pixels
(:mod:`patina.models.chroma`) and the mean chroma. Gray versions of the corpus's validation
photographs: mean a*b* error against the photograph and Hasler-Suesstrunk colourfulness, beside
leaving them gray and flat sepia. Each variant is the stage with its own params: ``raw`` (no
confidence gate, no coherence: the stage before this benchmark), ``coherent``, ``gated``, ``default``.

    python benchmarks/colorize.py [--prints 24] [--count 40] [--sheet docs/real-prints/colorize.png]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from patina.models.chroma import chroma_blotchiness, green_blue_share
from patina.models.image import lab_ab, luminance
from patina.models.metrics import ab_error, colourfulness
from patina.models.registry import DEFAULT_MODELS, build_stage, default_params
from patina.models.stage import StageInput
from patina.models.training_tasks import flat_sepia

SHARED = Path(os.environ.get("PATINA_SHARED", Path(__file__).resolve().parents[2] / "shared"))
VARIANTS = {
    "raw": {"confidence_sigma": 0.0, "coherence_radius": 0},
    "coherent": {"confidence_sigma": 0.0},
    "gated": {"coherence_radius": 0},
    "default": {},
}


def _load(path: Path, side: int) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image, np.float32) / 255.0


def monochrome_prints(count: int) -> list[Path]:
    with open(SHARED / "real-photos" / "SOURCES.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if "colour plate" not in r["visible_damage"]]
    mono = [r for r in rows if float(r["measured_tone"]) < 30 or "sepia" in r["visible_damage"]]
    return [SHARED / "real-photos" / r["file"] for r in mono[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prints", type=int, default=24)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--sheet", type=Path, help="write input | raw | default of the first 6 prints here")
    args = parser.parse_args()
    model = DEFAULT_MODELS["colorize"]
    base = default_params(model)
    stages = {name: build_stage(model, dataclasses.replace(base, **v)) for name, v in VARIANTS.items()}
    decisions = {"assess": {"kind": "grayscale"}}

    real: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ["input", *VARIANTS]}
    shown = []
    for path in monochrome_prints(args.prints):
        image = _load(path, args.size)
        outs = {
            "input": image,
            **{n: s.process(StageInput(image, decisions=decisions)).image for n, s in stages.items()},
        }
        for name, out in outs.items():
            ab = lab_ab(out)
            real[name].append(
                (
                    chroma_blotchiness(luminance(out), ab),
                    green_blue_share(ab),
                    float(np.hypot(*ab.transpose(2, 0, 1)).mean()),
                )
            )
        if len(shown) < 6:
            shown.append([outs["input"], outs["raw"], outs["default"]])
    print(f"real monochrome prints ({len(real['input'])}): blotchiness / green-blue share / mean chroma")
    for name, rows in real.items():
        b, g, c = np.mean(rows, axis=0)
        print(f"  {name:9} {b:6.2f} {g:7.3f} {c:6.2f}")

    photos = sorted((SHARED / "corpus" / "val").glob("*.jpg"))[: args.count]
    synthetic: dict[str, list[tuple[float, float]]] = {n: [] for n in ["gray", "flat_sepia", *VARIANTS, "truth"]}
    for path in photos:
        clean = _load(path, 384)
        gray = np.repeat(luminance(clean)[..., None], 3, axis=2)
        outs = {"gray": gray, "flat_sepia": flat_sepia(clean)}
        outs.update({n: s.process(StageInput(gray, decisions=decisions)).image for n, s in stages.items()})
        outs["truth"] = clean
        for name, out in outs.items():
            synthetic[name].append((ab_error(out, clean), colourfulness(out)))
    print(f"gray versions of {len(photos)} colour photographs: a*b* error / colourfulness")
    for name, rows in synthetic.items():
        e, c = np.mean(rows, axis=0)
        print(f"  {name:10} {e:6.2f} {c:6.2f}")

    if args.sheet and shown:
        cell = 256
        sheet = Image.new("RGB", (3 * cell, len(shown) * (cell + 14)), "white")
        draw = ImageDraw.Draw(sheet)
        for row, images in enumerate(shown):
            for col, image in enumerate(images):
                tile = Image.fromarray(np.rint(image * 255).astype(np.uint8))
                tile.thumbnail((cell, cell))
                sheet.paste(tile, (col * cell, row * (cell + 14)))
            draw.text((2, row * (cell + 14) + cell), "print | colorized before | colorized now", fill="black")
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.sheet)
        print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
