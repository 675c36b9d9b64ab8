"""Synthetic ageing of clean photographs, with the exact mask of the damage drawn.

Used to build the sample collection and (later) training and benchmark data. Every function
is pure: a working image in (see :mod:`patina.models.image`), a :class:`Degraded` out; the
random ones take a ``numpy.random.Generator`` so results are reproducible from a seed.
Global changes (toning, fading, grain, blur) leave the mask empty: they damage no pixel
beyond recovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from patina.models.image import check_image, luminance

SEPIA_DARK = np.array([0.16, 0.09, 0.04], dtype=np.float32)
SEPIA_LIGHT = np.array([1.0, 0.94, 0.80], dtype=np.float32)
PAPER = np.array([0.92, 0.88, 0.76], dtype=np.float32)


@dataclass(frozen=True)
class Degraded:
    image: np.ndarray  # working float32 (H, W, 3)
    mask: np.ndarray  # bool (H, W): pixels whose content the damage destroyed


def _none(image: np.ndarray) -> np.ndarray:
    return np.zeros(image.shape[:2], dtype=bool)


def grayscale(image: np.ndarray) -> Degraded:
    """Black-and-white print: luma on three equal channels."""
    gray = luminance(check_image(image))
    return Degraded(np.repeat(gray[..., None], 3, axis=2), _none(image))


def sepia(image: np.ndarray, amount: float = 1.0) -> Degraded:
    """Sepia toning: luma mapped onto a brown-to-cream ramp, blended by ``amount``."""
    gray = luminance(check_image(image))[..., None]
    toned = SEPIA_DARK + gray * (SEPIA_LIGHT - SEPIA_DARK)
    return Degraded((image * (1 - amount) + toned * amount).astype(np.float32), _none(image))


def fade(image: np.ndarray, amount: float = 0.4, paper: np.ndarray = PAPER) -> Degraded:
    """Fading: contrast lost toward the paper tone (blacks lift, whites yellow)."""
    check_image(image)
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    return Degraded((image * (1 - amount) + paper * amount).astype(np.float32), _none(image))


def color_cast(image: np.ndarray, gains: tuple[float, float, float] = (1.08, 1.0, 0.78)) -> Degraded:
    """A colour cast (default: yellowing) as per-channel gains."""
    check_image(image)
    return Degraded(np.clip(image * np.array(gains, dtype=np.float32), 0, 1), _none(image))


def grain(image: np.ndarray, sigma: float, rng: np.random.Generator) -> Degraded:
    """Film grain: luma-only Gaussian noise of standard deviation ``sigma``."""
    check_image(image)
    noise = rng.normal(0.0, sigma, image.shape[:2]).astype(np.float32)[..., None]
    return Degraded(np.clip(image + noise, 0, 1), _none(image))


def blur(image: np.ndarray, sigma: float) -> Degraded:
    """Optical softness: Gaussian blur of ``sigma`` px."""
    check_image(image)
    return Degraded(cv2.GaussianBlur(image, (0, 0), sigma), _none(image))


def _paint(image: np.ndarray, mask: np.ndarray, value: float, opacity: float) -> np.ndarray:
    out = image.copy()
    out[mask] = out[mask] * (1 - opacity) + value * opacity
    return out


def scratches(
    image: np.ndarray,
    count: int,
    rng: np.random.Generator,
    width: tuple[int, int] = (1, 2),
    bright: bool = True,
    opacity: float = 0.9,
) -> Degraded:
    """Thin, gently curved scratches running mostly along the long axis."""
    check_image(image)
    h, w = image.shape[:2]
    canvas = np.zeros((h, w), dtype=np.uint8)
    for _ in range(count):
        x0 = rng.uniform(0.05, 0.95) * w
        length = rng.uniform(0.3, 0.9) * h
        y0 = rng.uniform(0, h - length) if h > length else 0.0
        ys = np.linspace(y0, y0 + length, 24)
        xs = x0 + rng.uniform(-0.04, 0.04) * w * np.sin(np.linspace(0, rng.uniform(1, 3) * np.pi, 24))
        points = np.stack([xs, ys], axis=1).round().astype(np.int32)
        cv2.polylines(canvas, [points], False, 255, int(rng.integers(width[0], width[1] + 1)), cv2.LINE_8)
    mask = canvas > 0
    return Degraded(_paint(image, mask, 1.0 if bright else 0.05, opacity), mask)


def dust(image: np.ndarray, count: int, rng: np.random.Generator, radius: tuple[int, int] = (1, 3)) -> Degraded:
    """Dust and specks: small bright and dark blobs."""
    check_image(image)
    h, w = image.shape[:2]
    out = image.copy()
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(count):
        blob = np.zeros((h, w), dtype=np.uint8)
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(radius[0], radius[1] + 1)), int(rng.integers(radius[0], radius[1] + 1)))
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        spot = blob > 0
        out = _paint(out, spot, 0.97 if rng.random() < 0.6 else 0.04, 0.95)
        mask |= spot
    return Degraded(out, mask)


def crease(image: np.ndarray, rng: np.random.Generator, width: int = 3) -> Degraded:
    """A fold line across the print: a bright broken-emulsion line with a shadow beside it."""
    check_image(image)
    h, w = image.shape[:2]
    canvas = np.zeros((h, w), dtype=np.uint8)
    start = (0, int(rng.uniform(0.2, 0.8) * h))
    end = (w - 1, int(rng.uniform(0.2, 0.8) * h))
    cv2.line(canvas, start, end, 255, width, cv2.LINE_AA)
    mask = canvas > 64
    shadow = np.zeros_like(canvas)
    cv2.line(shadow, (start[0], start[1] + width), (end[0], end[1] + width), 255, width * 2, cv2.LINE_AA)
    shaded = image * (1 - 0.25 * (shadow[..., None] / 255.0)).astype(np.float32)
    return Degraded(_paint(shaded, mask, 0.95, 0.85), mask)
