"""Tone and colour corrections for faded and colour-cast prints (pure functions)."""

from __future__ import annotations

from collections.abc import Callable

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


def apply_luma_levels(image: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """The luma change of :func:`apply_levels` added to all three channels: contrast without the colour
    differences growing with it (a toned print keeps its toning's strength). Pointwise: safe on tiles."""
    luma = luminance(check_image(image))
    change = np.clip(luma * np.float32(gain) + np.float32(offset), 0.0, 1.0) - luma
    return np.clip(image + change[..., None], 0.0, 1.0).astype(np.float32)


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


DENSITY_FLOOR = 1e-3  # transmittance floor: optical density at most 3 (a print's Dmax is about 2.2)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    x = np.clip(image, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1)."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def to_density(image: np.ndarray) -> np.ndarray:
    """Per-channel optical density ``-log10`` of the linear transmittance (reflectance) of a working image.

    A print's dyes act in density: a dye that fades scales its channel's density, a stain adds to it.
    """
    return (-np.log10(np.maximum(srgb_to_linear(check_image(image)), DENSITY_FLOOR))).astype(np.float32)


def from_density(density: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_density`: a working image."""
    return linear_to_srgb(np.power(10.0, -np.maximum(density, 0.0)))


def apply_density_curves(image: np.ndarray, scale: np.ndarray, offset: np.ndarray, soft: bool = False) -> np.ndarray:
    """Each channel's density ``D`` becomes ``scale * D + offset`` (shapes ``(3,)``; pointwise: safe on tiles).

    ``soft``: what leaves [0, 1] is rolled off into it (:func:`soft_ends`) instead of clipped.
    """
    density = to_density(image) * np.asarray(scale, np.float32) + np.asarray(offset, np.float32)
    if not soft:
        return from_density(density)
    linear = np.power(10.0, -density, dtype=np.float32)  # above 1 where the curves brighten past white
    encoded = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    return soft_ends(encoded.astype(np.float32), allow_range=True)


def soft_ends(image: np.ndarray, knee: float = 0.1, allow_range: bool = False) -> np.ndarray:
    """Values past ``knee`` from either end of [0, 1] rolled off smoothly (slope 1 at the knee) into the
    levels inside :data:`SHADOW_END` and :data:`HIGHLIGHT_END`, so that a stretch keeps texture in the
    whites and blacks instead of clipping them (pointwise: safe on tiles). ``allow_range``: ``image``
    may hold values outside [0, 1] (a stretch before it is clipped)."""
    low, high = SHADOW_END + 1.0 / 255.0, HIGHLIGHT_END - 1.0 / 255.0
    x = np.asarray(image, np.float32) if allow_range else check_image(image)
    top, bottom = high - knee, low + knee
    x = np.where(x > top, top + knee * np.tanh((x - top) / knee), x)
    x = np.where(x < bottom, bottom - knee * np.tanh((bottom - x) / knee), x)
    return x.astype(np.float32)


SHADOW_END = 5.0 / 255.0  # a pixel whose darkest channel is at most this is clipped to black (for texture)
HIGHLIGHT_END = 250.0 / 255.0  # a pixel whose brightest channel is at least this is clipped to white


def pixel_sample(image: np.ndarray, max_pixels: int = 1 << 19) -> np.ndarray:
    """Every k-th pixel of each row and column (no averaging: the values' distribution is kept)."""
    step = max(1, int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / max_pixels))))
    return np.ascontiguousarray(image[::step, ::step])


def clipped_fractions(image: np.ndarray) -> tuple[float, float]:
    """Fractions of pixels at the ends: ``(shadows, highlights)`` (see :data:`SHADOW_END`, :data:`HIGHLIGHT_END`)."""
    check_image(image)
    return float((image.min(axis=2) <= SHADOW_END).mean()), float((image.max(axis=2) >= HIGHLIGHT_END).mean())


def bounded_strength(
    image: np.ndarray, transform: Callable[[float], np.ndarray], max_new_clipped: float = 0.002, steps: int = 10
) -> float:
    """The largest ``t`` in [0, 1] for which ``transform(t)`` (``t`` = 0: ``image`` unchanged, 1: the
    whole correction) leaves at most ``max_new_clipped`` more pixels at either end than ``image`` has."""
    shadows, highlights = clipped_fractions(image)

    def within(t: float) -> bool:
        s, h = clipped_fractions(transform(t))
        return s <= shadows + max_new_clipped and h <= highlights + max_new_clipped

    if within(1.0):
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (middle, high) if within(middle) else (low, middle)
    return low


def tone_change(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """Mean ``|ΔL*|`` and mean colour difference ΔE*ab (CIE 1976) between two working images."""
    lab_before = cv2.cvtColor(check_image(before), cv2.COLOR_RGB2LAB)
    lab_after = cv2.cvtColor(check_image(after, "after"), cv2.COLOR_RGB2LAB)
    delta = lab_after - lab_before
    return float(np.abs(delta[..., 0]).mean()), float(np.linalg.norm(delta, axis=2).mean())
