"""Chroma that follows the picture: coherence and confidence for colorization (pure functions).

A colorizer's a*b* can vary inside a region of even lightness (a coat half green, half
brown): on a print that reads as blotches. :func:`guided_chroma` makes a*b* locally a linear
function of lightness (He et al.'s guided filter, lightness as the guide), so colour changes
where the picture changes and stays even where it does not. :func:`flip_confidence` measures
how sure a colorizer is without looking inside it: the agreement of its a*b* for the picture
and for its mirror image (test-time augmentation); where the two disagree the colour is a guess
and :func:`gate_chroma` leaves the print neutral there. The metrics judge monochrome prints
without a reference: chroma blotchiness over smooth regions and the share of green or blue
blotches.
"""

from __future__ import annotations

import cv2
import numpy as np


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.blur(x, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_chroma(lightness: np.ndarray, ab: np.ndarray, radius: int, eps: float = 1e-3) -> np.ndarray:
    """a*b* ``(H, W, 2)`` filtered with ``lightness`` ``(H, W)`` in [0, 1] as the guide: within each
    ``2 radius + 1`` window a*b* become a linear function of lightness (``eps`` regularizes flat windows)."""
    if lightness.shape != ab.shape[:2] or ab.ndim != 3 or ab.shape[2] != 2:
        raise ValueError(f"lightness {lightness.shape} and a*b* {ab.shape} must be (H, W) and (H, W, 2)")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    guide = lightness.astype(np.float32)
    mean_g = _box(guide, radius)
    var_g = _box(guide * guide, radius) - mean_g**2
    out = np.empty_like(ab, dtype=np.float32)
    for c in range(2):
        src = ab[..., c].astype(np.float32)
        mean_s = _box(src, radius)
        slope = (_box(guide * src, radius) - mean_g * mean_s) / (var_g + eps)
        offset = mean_s - slope * mean_g
        out[..., c] = _box(slope, radius) * guide + _box(offset, radius)
    return out


def flip_confidence(ab: np.ndarray, ab_of_mirror: np.ndarray, sigma: float) -> np.ndarray:
    """Per-pixel confidence in [0, 1] ``(H, W)``: 1 where the a*b* of the picture and of its mirror image
    (mirrored back) agree, falling as a Gaussian of their distance (``sigma`` a*b* units)."""
    if ab.shape != ab_of_mirror.shape:
        raise ValueError(f"a*b* shapes differ: {ab.shape} vs {ab_of_mirror.shape}")
    distance = np.linalg.norm(ab - ab_of_mirror[:, ::-1], axis=2)
    return np.exp(-0.5 * (distance / sigma) ** 2).astype(np.float32)


def gate_chroma(ab: np.ndarray, confidence: np.ndarray, radius: int) -> np.ndarray:
    """a*b* scaled toward neutral where the (box-smoothed) confidence is low."""
    return (ab * _box(confidence.astype(np.float32), radius)[..., None]).astype(np.float32)


def smooth_regions(lightness: np.ndarray, radius: int = 7, level: float = 0.02) -> np.ndarray:
    """Pixels whose lightness (in [0, 1]) varies by less than ``level`` (std) around them: where a print
    shows an even surface and its colour should be even too."""
    mean = _box(lightness, radius)
    return np.sqrt(np.maximum(_box(lightness * lightness, radius) - mean**2, 0)) < level


def chroma_blotchiness(lightness: np.ndarray, ab: np.ndarray, radius: int = 7) -> float:
    """Mean local standard deviation of a*b* (CIELAB units) over the smooth regions of the print: 0 for
    even colour, large for blotches."""
    smooth = smooth_regions(lightness, radius)
    if not smooth.any():
        return 0.0
    spread = sum(
        np.sqrt(np.maximum(_box(ab[..., c] ** 2, radius) - _box(ab[..., c], radius) ** 2, 0)) for c in range(2)
    )
    return float(spread[smooth].mean())


def green_blue_share(ab: np.ndarray, chroma: float = 12.0) -> float:
    """Share of pixels coloured a clear green or blue (chroma over ``chroma``, hue between 120 and 300
    degrees): on old portraits and street scenes mostly blotches over clothes, skin and backgrounds."""
    hue = np.degrees(np.arctan2(ab[..., 1], ab[..., 0])) % 360
    strong = np.hypot(ab[..., 0], ab[..., 1]) > chroma
    return float((strong & (hue > 120) & (hue < 300)).mean())
