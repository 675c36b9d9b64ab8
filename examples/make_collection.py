"""Build the bundled sample collection: clean corpus photos, aged synthetically.

    python examples/make_collection.py --corpus ../shared/corpus --out examples/collection

Writes the aged JPEGs, ``manifest.csv`` and ``SOURCES.md`` (sources, licences, what was done).
Deterministic: the same corpus gives the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from patina.models import synthetic as syn
from patina.models.image import to_uint8, to_working

# (corpus file, item id, title, recipe): recipe steps are applied in order.
SAMPLES = [
    ("train/kodak_0005.jpg", "girl-face-paint", "Girl with face paint", "sepia fade dust scratches grain"),
    ("train/kodak_0015.jpg", "woman-red-hat", "Woman in a hat", "gray fade dust crease grain"),
    ("train/kodak_0020.jpg", "woman-standing", "Woman by a sculpture", "sepia dust scratches"),
    ("train/skimage_0001.jpg", "astronaut", "Astronaut portrait", "gray fade dust grain"),
    ("train/kodak_0004.jpg", "beach-couple", "Couple on a beach", "sepia fade crease dust"),
    ("train/kodak_0003.jpg", "statue", "Statue with a globe", "gray dust scratches blur"),
    ("train/kodak_0001.jpg", "old-town", "Half-timbered houses", "sepia fade scratches dust grain"),
    ("train/kodak_0012.jpg", "lighthouse", "Lighthouse and fence", "gray fade dust"),
    ("train/kodak_0013.jpg", "red-barn", "Barn by a pond", "sepia dust crease"),
    ("train/kodak_0021.jpg", "painted-house", "Painted house", "gray scratches dust grain"),
    ("train/kodak_0014.jpg", "parrots", "Two macaws (colour, yellowed)", "yellow fade dust"),
    ("train/skimage_0003.jpg", "cat", "Cat (colour, faded)", "fade yellow grain"),
]


def age(image: np.ndarray, recipe: str, rng: np.random.Generator) -> np.ndarray:
    steps = {
        "gray": lambda im: syn.grayscale(im),
        "sepia": lambda im: syn.sepia(im, 0.9),
        "fade": lambda im: syn.fade(im, float(rng.uniform(0.25, 0.4))),
        "yellow": lambda im: syn.color_cast(im, (1.06, 1.0, 0.72)),
        "grain": lambda im: syn.grain(im, 0.025, rng),
        "blur": lambda im: syn.blur(im, 0.8),
        "dust": lambda im: syn.dust(im, int(rng.integers(25, 60)), rng),
        "scratches": lambda im: syn.scratches(im, int(rng.integers(2, 5)), rng, bright=bool(rng.random() < 0.7)),
        "crease": lambda im: syn.crease(im, rng),
    }
    for step in recipe.split():
        image = steps[step](image).image
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    credits = {row["file"]: row for row in csv.DictReader(open(args.corpus / "ATTRIBUTION.csv", encoding="utf-8"))}
    manifest, sources = [], []
    for index, (name, item_id, title, recipe) in enumerate(SAMPLES):
        rng = np.random.default_rng(20261124 + index)
        clean = to_working(np.asarray(Image.open(args.corpus / name).convert("RGB")))
        aged = to_uint8(age(clean, recipe, rng))
        target = args.out / f"{item_id}.jpg"
        Image.fromarray(aged).save(target, quality=90)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        credit = credits[name]
        manifest.append(
            {
                "item_id": item_id,
                "source_uri": target.name,
                "checksum": f"sha256:{digest}",
                "title": title,
                "creator": credit["attribution"],
                "collection": "patina sample collection",
                "rights": credit["license"],
            }
        )
        sources.append(
            f"| `{target.name}` | {credit['attribution']} | {credit['license']} | {credit['source_url']} "
            f"| `{name}` | {recipe} |"
        )
    with open(args.out / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(manifest[0]))
        writer.writeheader()
        writer.writerows(manifest)
    header = [
        "# Sample collection: sources and licences",
        "",
        "Twelve photographs from `../shared/corpus` (themselves from the Kodak Lossless True Colour Image Suite",
        "and scikit-image's sample data), **modified**: resized to 512 px on the long side by the corpus, then",
        "aged synthetically by `examples/make_collection.py` (toning, fading, grain, dust, scratches, creases,",
        "yellowing; the recipe column). Rebuild with `python examples/make_collection.py --corpus ../shared/corpus",
        "--out examples/collection`.",
        "",
        "| file | credit | licence | source | corpus file | ageing recipe |",
        "|---|---|---|---|---|---|",
    ]
    (args.out / "SOURCES.md").write_text("\n".join(header + sources) + "\n", encoding="utf-8")
    print(f"wrote {len(manifest)} items to {args.out}")


if __name__ == "__main__":
    main()
