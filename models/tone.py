"""Tone and colour corrections for faded and colour-cast prints (pure functions)."""

from __future__ import annotations

import cv2
import numpy as np

from patina.models.image import check_image, luminance, to_uint8


def auto_contrast(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5, max_gain: float = 4.0) -> np.ndarray:
    """Stretch luma so its ``low_pct``..``high_pct`` percentiles span [0, 1].

    The same gain and offset apply to all three channels, so hue is kept. ``max_gain`` caps
    the stretch on nearly flat images (noise would otherwise be amplified without bound).
    """
    return apply_levels(image, *contrast_levels(image, low_pct, high_pct, max_gain))


def contrast_levels(
    image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5, max_gain: float = 4.0
) -> tuple[float, float]:
    """``(gain, offset)`` of :func:`auto_contrast`, measured on ``image`` (or a proxy of it)."""
    check_image(image)
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ValueError(f"need 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
    if max_gain < 1.0:
        raise ValueError(f"max_gain must be >= 1, got {max_gain}")
    lo, hi = np.percentile(luminance(image), [low_pct, high_pct])
    span = max(float(hi - lo), 1e-6)
    gain = min(1.0 / span, max_gain)
    # Centre the capped stretch on the measured range's midpoint.
    offset = 0.5 - gain * float(lo + hi) / 2.0 if gain < 1.0 / span else -gain * float(lo)
    return gain, offset


def apply_levels(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """``image * gain + offset``, clipped to [0, 1] (pointwise: safe on tiles)."""
    return np.clip(check_image(image) * np.float32(gain) + np.float32(offset), 0.0, 1.0).astype(np.float32)


def illuminant_estimate(image: np.ndarray, p: float = 6.0, clip: float = 0.98) -> np.ndarray:
    """Scene illuminant as RGB (sums to 3) by the shades-of-gray method (Minkowski ``p``).

    Near-clipped pixels (any channel above ``clip``) are left out: they carry no colour.
    """
    check_image(image)
    if p < 1.0:
        raise ValueError(f"p must be >= 1, got {p}")
    pixels = image.reshape(-1, 3)
    keep = pixels.max(axis=1) < clip
    if keep.sum() < 16:
        keep = np.ones(len(pixels), dtype=bool)
    norm = np.power(np.mean(np.power(pixels[keep].astype(np.float64), p), axis=0), 1.0 / p)
    norm = np.maximum(norm, 1e-6)
    return (3.0 * norm / norm.sum()).astype(np.float32)


def remove_color_cast(image: np.ndarray, strength: float = 1.0, p: float = 6.0) -> np.ndarray:
    """Divide out the estimated illuminant (von Kries), keeping mean luma unchanged.

    ``strength`` in [0, 1] blends between no correction (0) and full correction (1).
    """
    return apply_gains(image, color_cast_gains(image, strength, p))


def color_cast_gains(image: np.ndarray, strength: float = 1.0, p: float = 6.0) -> np.ndarray:
    """Per-channel gains of :func:`remove_color_cast` (mean luma kept), measured on ``image``."""
    check_image(image)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    gains = 1.0 / illuminant_estimate(image, p=p)
    gains = 1.0 + strength * (gains - 1.0)
    before = float(luminance(image).mean())
    after = float(luminance((image * gains).astype(np.float32)).mean())
    if after > 1e-6:
        gains = gains * (before / after)
    return gains.astype(np.float32)


def highlight_gains(image: np.ndarray, quantile: float = 0.95) -> np.ndarray:
    """Per-channel gains that make the brightest ``1 - quantile`` of the pixels (by luma) neutral."""
    check_image(image)
    luma = luminance(image)
    mean = image[luma >= np.quantile(luma, quantile)].mean(axis=0)
    return (mean.mean() / np.maximum(mean, 1e-6)).astype(np.float32)


def print_cast_gains(image: np.ndarray, strength: float = 1.0, min_deviation: float = 0.1) -> np.ndarray | None:
    """Gains that remove a print's colour cast, or None when there is no cast to remove.

    A cast (yellowing, a faded dye layer) shifts the whole tonal range, the highlights
    included, while a scene's dominant colour (a sunset, foliage) mostly moves the mean. So
    each channel's correction is the shades-of-grey gain only where the highlights' gain
    agrees in direction, and then the smaller of the two; when no channel moves by
    ``min_deviation``, the colours are left alone.
    """
    overall = color_cast_gains(image, 1.0)
    highlights = highlight_gains(image)
    agree = np.sign(overall - 1.0) == np.sign(highlights - 1.0)
    deviation = np.where(agree, np.sign(overall - 1.0) * np.minimum(abs(overall - 1.0), abs(highlights - 1.0)), 0.0)
    if np.abs(deviation).max() < min_deviation:
        return None
    gains = 1.0 + strength * deviation
    before = float(luminance(image).mean())
    after = float(luminance((image * gains).astype(np.float32)).mean())
    return (gains * (before / after if after > 1e-6 else 1.0)).astype(np.float32)


def apply_gains(image: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Scale each channel by ``gains`` (shape ``(3,)``), clipped to [0, 1] (pointwise: safe on tiles)."""
    return np.clip(check_image(image) * np.asarray(gains, np.float32), 0.0, 1.0).astype(np.float32)


def neutralize(image: np.ndarray) -> np.ndarray:
    """Replace a monochrome print's toning (sepia, yellowing) by neutral gray of the same luma."""
    gray = luminance(check_image(image))
    return np.repeat(gray[..., None], 3, axis=2).astype(np.float32)


def nlm_strength(noise_sigma: float, strength: float) -> float:
    """OpenCV's non-local means ``h`` (8-bit units) for a Gaussian noise sigma in [0, 1] units."""
    return max(1.0, strength * noise_sigma * 255.0)


def denoise_nlm(image: np.ndarray, h: float, monochrome: bool = False) -> np.ndarray:
    """Non-local means denoising (OpenCV, 7 px patches, 21 px search window) of a working image.

    OpenCV's fast NLM works on 8-bit images, so it is applied as a correction: the change it
    makes to the 8-bit copy is added to the float image, which keeps 16-bit gradations where
    nothing is changed. Monochrome prints are denoised on luma only (3x faster, no colour noise
    to remove).
    """
    check_image(image)
    if monochrome:
        gray = np.rint(np.clip(luminance(image), 0.0, 1.0) * 255.0).astype(np.uint8)
        delta = cv2.fastNlMeansDenoising(gray, None, h, 7, 21).astype(np.float32) - gray
        delta = delta[..., None]
    else:
        rgb = to_uint8(image)
        delta = cv2.fastNlMeansDenoisingColored(rgb, None, h, h, 7, 21).astype(np.float32) - rgb
    return np.clip(image + delta / 255.0, 0.0, 1.0, dtype=np.float32)
