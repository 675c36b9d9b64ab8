"""Synthetic ageing of clean photographs, with the exact mask of the damage drawn.

Used to build the sample collection, the quality benchmark and training data. Every function
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


def cracks(image: np.ndarray, rng: np.random.Generator, branches: int = 6, step: float = 6.0) -> Degraded:
    """A network of emulsion cracks: dark, thin random walks branching from a few seeds."""
    check_image(image)
    h, w = image.shape[:2]
    canvas = np.zeros((h, w), dtype=np.uint8)
    for _ in range(branches):
        point = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(10, 40))):
            angle += rng.normal(0, 0.5)
            nxt = point + step * np.array([np.cos(angle), np.sin(angle)])
            cv2.line(canvas, tuple(point.round().astype(int)), tuple(nxt.round().astype(int)), 255, 1, cv2.LINE_8)
            point = nxt
    mask = canvas > 0
    return Degraded(_paint(image, mask, 0.08, 0.8), mask)


def torn_corner(image: np.ndarray, rng: np.random.Generator, size: float = 0.2) -> Degraded:
    """A corner torn away: a ragged triangle of missing print (the mount shows through, near white)."""
    check_image(image)
    h, w = image.shape[:2]
    reach = size * min(h, w)
    corner = int(rng.integers(0, 4))
    cx, cy = (0 if corner in (0, 3) else w - 1), (0 if corner in (0, 1) else h - 1)
    sx, sy = (1 if cx == 0 else -1), (1 if cy == 0 else -1)
    edge = [
        (cx + sx * reach * t, cy + sy * reach * (1 - t) + rng.normal(0, reach * 0.05)) for t in np.linspace(0, 1, 12)
    ]
    polygon = np.array([(cx, cy), *edge], dtype=np.float32).round().astype(np.int32)
    canvas = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(canvas, [polygon], 255)
    mask = canvas > 0
    return Degraded(_paint(image, mask, 0.93, 1.0), mask)


def stains(image: np.ndarray, rng: np.random.Generator, count: int = 4, strength: float = 0.35) -> Degraded:
    """Water stains and foxing: soft brown blotches; only their dense cores destroy the picture (mask)."""
    check_image(image)
    h, w = image.shape[:2]
    alpha = np.zeros((h, w), dtype=np.float32)
    for _ in range(count):
        blob = np.zeros((h, w), dtype=np.float32)
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        radius = int(rng.uniform(0.02, 0.08) * min(h, w)) + 1
        cv2.circle(blob, centre, radius, 1.0, -1)
        alpha = np.maximum(alpha, cv2.GaussianBlur(blob, (0, 0), radius / 2 + 1))
    alpha = np.clip(alpha * strength / max(alpha.max(), 1e-6), 0, 1)[..., None]
    brown = np.array([0.55, 0.38, 0.2], dtype=np.float32)
    out = (image * (1 - alpha) + brown * alpha).astype(np.float32)
    return Degraded(out, alpha[..., 0] > 0.5 * strength)


def jpeg(image: np.ndarray, quality: int = 30) -> Degraded:
    """JPEG compression artefacts (8-bit round trip through OpenCV's encoder)."""
    check_image(image)
    bgr = np.ascontiguousarray(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)[..., ::-1])
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    out = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0
    return Degraded(np.ascontiguousarray(out), _none(image))


def halftone(image: np.ndarray, period: int = 4) -> Degraded:
    """A printed halftone screen: luma as dots on a ``period`` px grid (newspaper reproductions)."""
    check_image(image)
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    screen = (np.cos(2 * np.pi * xx / period) * np.cos(2 * np.pi * yy / period) + 1) / 2
    ink = (luminance(image) > screen).astype(np.float32)[..., None]
    return Degraded(np.repeat(ink, 3, axis=2), _none(image))
