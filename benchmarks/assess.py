"""Assess benchmark: is each print monochrome, toned, single-hue or colour, and what does enhance do to it?

The labelled set (``assess/labels.csv``):

- every print of ``../shared/real-photos/`` (grayscale, toned monochrome, two early colour plates),
  labelled by eye on contact sheets; each file is checked against its git blob sha1;
- every photograph of ``../shared/corpus`` (``val`` and ``train``) as colour, except those the
  CSV names: toned or black-and-white pictures in the corpus, and three left out as unsure;
- made from the corpus ``val`` photographs (seeded): toned prints (sepia with stains and fading,
  blue and purple toning), faded colour prints (dye fading, ``synthetic.random_dye_fade``) and
  hand-coloured prints (a sepia print with some of the photograph's colours painted back).

It prints the confusion table of ``classical/assess@2`` (``collection = "auto"``, then the
monochrome rows again with ``collection = "monochrome"``) beside the rule it replaced (chroma
residual under 3: toned), and what the default enhance stage does to the real toned prints:
pixels newly clipped at either end, mean tone change, items flagged, colour casts "removed".

    python benchmarks/assess.py [--photos ../shared/real-photos/images] [--corpus ../shared/corpus] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from patina.models import registry
from patina.models import synthetic as syn
from patina.models.assessment import MONOCHROME_KINDS, assess_image
from patina.models.codecs import decode_image
from patina.models.image import luminance, to_working
from patina.models.stage import StageInput
from patina.models.tone import clipped_fractions

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
LABELS = HERE / "assess" / "labels.csv"
KINDS = ("grayscale", "sepia", "toned", "single-hue", "color")


def decode(path: Path, blob_sha1: str = "") -> np.ndarray:
    """A working image as a run decodes it (alpha flattened, ICC applied), after checking its blob sha1."""
    data = path.read_bytes()
    if blob_sha1 and hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != blob_sha1:
        raise SystemExit(f"{path} is not git blob {blob_sha1}: the benchmark's prints are not the labelled ones")
    return to_working(decode_image(data, 1 << 28).pixels)


def old_kind(found) -> str:
    """The rule classical/assess@1 applied: monochrome when the chroma residual is under 3."""
    if found.chroma_p95 < 4.0:
        return "grayscale"
    return ("sepia" if 20 <= found.hue_deg <= 100 else "toned") if found.chroma_residual < 3.0 else "color"


def hand_coloured(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sepia print with the photograph's own colours painted back over a few soft regions (about a third)."""
    import cv2

    base = syn.sepia(image).image
    h, w = image.shape[:2]
    field = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), max(h, w) / 12)
    paint = np.clip((field - np.quantile(field, 0.66)) / (np.ptp(field) * 0.1 + 1e-6), 0, 1)[..., None]
    gray = luminance(image)[..., None]
    tint = np.clip(gray + 0.7 * (image - gray), 0, 1)  # watercolour: the photograph's hues, less saturated
    return (base * (1 - paint) + tint * base.mean(axis=2, keepdims=True) / np.maximum(gray, 1e-3) * paint).clip(0, 1)


SYNTHETIC = {
    "toned (synthetic sepia, stains, fading)": (
        "toned",
        lambda im, rng: syn.fade(syn.stains(syn.sepia(im).image, rng, 4, 0.3).image, 0.25).image,
    ),
    "toned (synthetic blue / purple)": (
        "toned",
        lambda im, rng: (
            syn.color_cast(syn.grayscale(im).image, ((0.8, 0.92, 1.15), (1.1, 0.9, 1.08))[rng.integers(2)]).image
        ),
    ),
    "faded colour (synthetic dye fading)": ("color", lambda im, rng: syn.random_dye_fade(im, rng).image),
    "hand-coloured (synthetic)": ("color", hand_coloured),
}


def labelled(photos: Path, corpus: Path):
    """``(set name, truth, image loader)`` for every labelled picture (real prints, corpus, synthetic)."""
    with open(LABELS, newline="") as handle:
        rows = list(csv.DictReader(handle))
    named = {row["file"]: row for row in rows if row["source"] == "corpus"}
    for row in rows:
        if row["source"] == "real-photos":
            truth = row["label"]
            name = {"color": "real colour plates", "grayscale": "real grayscale prints"}.get(truth, "real toned prints")
            yield name, truth, row["file"], lambda row=row: decode(photos / row["file"], row["blob_sha1"])
    for split in ("val", "train"):
        for path in sorted((corpus / split).glob("*.jpg")):
            row = named.get(f"{split}/{path.name}")
            truth = row["label"] if row else "color"
            if truth == "unsure":
                continue
            name = f"corpus {split} colour photographs" if truth == "color" else "corpus monochrome pictures"
            yield name, truth, f"{split}/{path.name}", lambda path=path: decode(path)
    rng = np.random.default_rng(11)
    for path in sorted((corpus / "val").glob("*.jpg")):
        if named.get(f"val/{path.name}"):
            continue
        for name, (truth, make) in SYNTHETIC.items():
            seed = int(rng.integers(1 << 31))
            yield (
                name,
                truth,
                f"val/{path.name}",
                lambda path=path, make=make, seed=seed: make(decode(path), np.random.default_rng(seed)).astype(
                    np.float32
                ),
            )


def enhance_effect(image: np.ndarray, kind: str, noise_sigma: float, bounded: bool = True) -> dict:
    """What the default enhance stage does to one print assessed as ``kind`` (``bounded=False``: without
    its clipping bound, as ``classical/tone@2`` did)."""
    model = registry.DEFAULT_MODELS["enhance"]
    stage = registry.build_stage(model, registry.as_params(model, {} if bounded else {"max_new_clipped": 1.0}))
    out = stage.process(StageInput(image, decisions={"assess": {"kind": kind, "noise_sigma": noise_sigma}}))
    before, after = clipped_fractions(image), clipped_fractions(out.image)
    return {
        "route": out.decisions["route"],
        "new_shadows": after[0] - before[0],
        "new_highlights": after[1] - before[1],
        "tone_change": out.decisions["tone_change"],
        "flagged": bool(out.decisions["flags"]),
    }


def table(results: list[dict], key: str) -> list[str]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in results:
        counts[row["set"]][row[key]] += 1
    lines = ["| set | n | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
    for name, found in counts.items():
        lines.append(f"| {name} | {sum(found.values())} | " + " | ".join(str(found[k]) for k in KINDS) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=SHARED / "real-photos" / "images")
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument("--json", type=Path, help="write every picture's result here")
    args = parser.parse_args()
    results = []
    for name, truth, file, load in labelled(args.photos, args.corpus):
        image = load()
        found = assess_image(image)
        row = {"set": name, "truth": truth, "file": file, "kind": found.kind, "old": old_kind(found),
               "color_spread": found.color_spread}  # fmt: skip
        if truth != "color":
            row["monochrome_collection"] = assess_image(image, collection="monochrome").kind
        if name.startswith("real toned"):
            row["enhance"] = enhance_effect(image, found.kind, found.noise_sigma)
            row["enhance_old"] = enhance_effect(image, row["old"], found.noise_sigma, bounded=False)
        results.append(row)
    print("classical/assess@2, collection = 'auto' (rows: truth; columns: the kind assessed)\n")
    print("\n".join(table(results, "kind")))
    print("\nthe same pictures under the rule it replaced (chroma residual under 3: monochrome)\n")
    print("\n".join(table(results, "old")))
    mono = [r for r in results if r["truth"] != "color"]
    print("\nmonochrome pictures with collection = 'monochrome'\n")
    print("\n".join(table(mono, "monochrome_collection")))
    colour = [r for r in results if r["truth"] == "color"]
    called_mono = [r for r in colour if r["kind"] in MONOCHROME_KINDS]
    toned = [r for r in results if r["set"].startswith("real toned")]
    kept = sum(r["kind"] != "color" for r in toned) / len(toned)
    recognised = sum(r["monochrome_collection"] in MONOCHROME_KINDS for r in toned) / len(toned)
    print(f"\ncolour pictures called monochrome: {len(called_mono)} of {len(colour)}"
          f"{' ' + str([r['file'] for r in called_mono[:10]]) if called_mono else ''}")  # fmt: skip
    print(f"real toned prints never given colour corrections (auto): {kept:.1%} (target >= 95%)")
    print(f"real toned prints recognised as monochrome (collection = 'monochrome'): {recognised:.1%} (target >= 95%)")
    singles = [r for r in colour if r["kind"] == "single-hue"]
    print(f"colour pictures judged single-hue (colours kept, no cast correction): {len(singles)} of {len(colour)}")
    for label, key in (("now (assess@2 + tone@3)", "enhance"), ("before (assess@1 rule, no bound)", "enhance_old")):
        effects = [r[key] for r in toned]
        routes = Counter(e["route"] for e in effects)
        print(
            f"\nenhance on the {len(toned)} real toned prints, {label}: routes {dict(routes)}; newly clipped "
            f"highlights max {max(e['new_highlights'] for e in effects):.2%}, shadows max "
            f"{max(e['new_shadows'] for e in effects):.2%}; "
            f"mean |dL*| {np.mean([e['tone_change'] for e in effects]):.2f}"
            f" (max {max(e['tone_change'] for e in effects):.1f}); flagged {sum(e['flagged'] for e in effects)}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
