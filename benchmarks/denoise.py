"""Denoise benchmark: how strong the enhance stage's non-local means may be before it takes picture detail.

Corpus ``val`` photographs (grayscale, as most old prints are), synthetic film grain of two strengths;
the enhance stage's NLM at several strengths (``h = strength x the noise sigma assess measures``), side by
side on the same pictures. Printed per grain and strength, against the clean photograph: PSNR, SSIM, and
**detail kept**: the correlation of the output's band-pass (difference of Gaussians, 1 and 2 px: the fine
texture of fabric, foliage, murals) with the clean photograph's. Noise lowers it at the input; smoothing
that flattens texture lowers it too, where PSNR may still rise.

    python benchmarks/denoise.py [--count 24] [--strength 0.4 0.6 0.8 1.0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from patina.models import synthetic as syn
from patina.models.assessment import assess_image
from patina.models.image import luminance
from patina.models.metrics import psnr, ssim
from patina.models.tone import denoise_nlm, nlm_strength

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def band(gray: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(gray, (0, 0), 1.0) - cv2.GaussianBlur(gray, (0, 0), 2.0)


def detail_kept(out: np.ndarray, clean: np.ndarray) -> float:
    a, b = band(luminance(out)).ravel(), band(luminance(clean)).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--strength", type=float, nargs="+", default=[0.4, 0.6, 0.8, 1.0])
    args = parser.parse_args()
    paths = sorted((args.corpus / "val").glob("*.jpg"))[: args.count]
    rows: dict[tuple[float, str], list[tuple[float, float, float]]] = {}
    for index, path in enumerate(paths):
        picture = Image.open(path).convert("RGB")
        picture.thumbnail((args.size, args.size))
        clean = syn.grayscale(np.asarray(picture, np.float32) / 255.0).image
        for grain in (0.02, 0.04):
            noisy = syn.grain(clean, grain, np.random.default_rng(index)).image
            sigma = assess_image(noisy).noise_sigma
            rows.setdefault((grain, "input"), []).append(
                (psnr(noisy, clean), ssim(noisy, clean), detail_kept(noisy, clean))
            )
            for strength in args.strength:
                out = denoise_nlm(noisy, nlm_strength(sigma, strength), monochrome=True)
                rows.setdefault((grain, f"strength {strength:g}"), []).append(
                    (psnr(out, clean), ssim(out, clean), detail_kept(out, clean))
                )
    print(f"{len(paths)} corpus val photographs, grayscale, long side {args.size} px")
    print(f"{'grain':>6} {'NLM':<14} {'PSNR':>6} {'SSIM':>7} {'detail kept':>12}")
    for (grain, label), values in rows.items():
        p, s, d = np.mean(values, axis=0)
        print(f"{grain:>6} {label:<14} {p:6.2f} {s:7.4f} {d:12.3f}")


if __name__ == "__main__":
    main()
