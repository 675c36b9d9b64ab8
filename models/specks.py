"""Dust, speck and fine-scratch detection and filling (classical, pure functions)."""

from __future__ import annotations

import cv2
import numpy as np

from patina.models.image import check_image, check_mask, luminance

SIGMA_SAMPLES = 1 << 19  # pixels the robust sigma is estimated from (a regular grid over the image)


def _robust_sigma(values: np.ndarray) -> float:
    """Gaussian sigma from the median absolute deviation, on a regular grid of at most ``SIGMA_SAMPLES`` pixels.

    A MAD estimate from half a million samples is as good as one from all of a scan's, and
    the median is the cost of the whole detector otherwise.
    """
    step = max(1, int(np.ceil(np.sqrt(values.size / SIGMA_SAMPLES))))
    sample = values[::step, ::step] if values.ndim == 2 else values.ravel()[:: step * step]
    med = np.median(sample)
    return float(1.4826 * np.median(np.abs(sample - med)))


def speck_levels(
    image: np.ndarray, kernel: int = 11, threshold_sigma: float = 8.0, min_contrast: float = 0.3
) -> tuple[float, float]:
    """Detection levels of the white and black top-hats (see :func:`detect_specks`), measured on ``image``."""
    check_image(image)
    if kernel < 3 or kernel % 2 == 0:
        raise ValueError(f"kernel must be an odd size >= 3, got {kernel}")
    gray = luminance(image)
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    white, black = (cv2.morphologyEx(gray, op, element) for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT))
    return tuple(max(min_contrast, threshold_sigma * _robust_sigma(r)) for r in (white, black))


def component_shapes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-connected components of a bool mask: ``(labels, area, length)``, label 0 the background.

    ``length`` is a component's longer bounding-box side, so ``area / length`` is its mean
    width: small for scratches and cracks, large for blobs.
    """
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    length = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    return labels, stats[:, cv2.CC_STAT_AREA], length


def component_widths(mask: np.ndarray, labels: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Mean width of each component of ``labels`` (from :func:`component_shapes`): twice its area over its
    boundary length, which is a line's width however the line winds or forks (a crack network), and about
    the radius of a blob. Where a component meets the image edge no boundary is counted, so a sky cut
    by the frame stays a region. Label 0's entry is meaningless."""
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    boundary = np.bincount(labels[edge], minlength=len(area)).astype(np.float64)
    return 2.0 * area / np.maximum(boundary, 1.0)


def drop_large_regions(mask: np.ndarray, max_fraction: float, max_width: float) -> tuple[np.ndarray, int]:
    """``mask`` without its components larger than ``max_fraction`` of the image that are not lines (mean
    width over ``max_width`` px), and how many were dropped: bright skies and blown highlights look like
    torn-off paper, while a crack network, however large, is a line."""
    if not mask.any():
        return mask, 0
    labels, area, _ = component_shapes(mask)
    large = (area > max_fraction * mask.size) & (component_widths(mask, labels, area) > max_width)
    large[0] = False
    return mask & ~large[labels], int(large.sum())


def _luma_residual(image: np.ndarray, median: int) -> np.ndarray:
    """The 8-bit luma minus its ``median`` px median, in [-1, 1]: what a thin mark adds to the picture."""
    luma = np.clip(luminance(image) * 255.0, 0, 255).astype(np.uint8)
    return (luma.astype(np.float32) - cv2.medianBlur(luma, median).astype(np.float32)) / 255.0


def drop_textured(
    mask: np.ndarray, image: np.ndarray, max_texture: float = 0.05, min_ratio: float = 1.25, median: int = 15,
    ring: int = 7, line_length: int = 150, line_width: float = 8.0, line_min_ratio: float = 2.0,
) -> tuple[np.ndarray, int]:  # fmt: skip
    """``mask`` without the components that do not stand out from the picture's own texture, and how many
    pixels were left out.

    Both are measured on the luma residual against its ``median`` px median: a component's contrast is its
    mean residual, its surroundings' texture the mean residual in a ``ring`` px band around it. A crack or
    a spot on a print is a mark on smooth paper or emulsion (texture 0.02 on the real crops of
    ``benchmarks/real_damage.py``); foliage, fabric, stripes and edges the detector takes for damage sit in
    texture as strong as themselves. Components whose surroundings are rougher than ``max_texture`` or whose
    contrast is under ``min_ratio`` times that texture are left out, unless they are lines across the print
    (at least ``line_length`` px long, at most ``line_width`` px wide on average: a crease or a scratch,
    whose own shadow or the picture it crosses makes its surroundings rough) that still stand out
    ``line_min_ratio`` times over that texture: the creases and scratches of the sample collection and of
    the real prints do (2.5-10 times), a plaid's or a fence's stripes, one among many like it, do not
    (1.6-1.7).
    """
    check_image(image)
    if not mask.any():
        return mask, 0
    labels, area, length = component_shapes(mask)
    count = len(area)
    residual = np.abs(_luma_residual(image, median))
    kernel = np.ones((2 * ring + 1,) * 2, np.uint8)
    owner = cv2.dilate(labels.astype(np.float32), kernel).astype(np.int32)  # the (highest) component nearby
    band = (owner > 0) & ~mask
    contrast = np.bincount(labels.ravel(), residual.ravel(), count) / np.maximum(area, 1)
    around = np.bincount(owner[band], minlength=count)
    texture = np.bincount(owner[band], residual[band], count) / np.maximum(around, 1)
    textured = (texture > max_texture) | (contrast < min_ratio * texture)
    line = (length >= line_length) & (component_widths(mask, labels, area) <= line_width)
    textured &= ~(line & (contrast >= line_min_ratio * texture))
    textured[0] = False
    dropped = textured[labels]
    return mask & ~dropped, int(dropped.sum())


def grow_into_edges(
    mask: np.ndarray,
    image: np.ndarray,
    band: int = 3,
    level: float = 0.04,
    median: int = 15,
    min_length: int = 0,
    min_run: float = 0.0,
) -> tuple[np.ndarray, int]:
    """``mask`` grown, by at most ``band`` px, into the pixels beside it that stand out of the picture the other
    way (luma residual against its ``median`` px median of the opposite sign to the component's own, over
    ``level``), and how many were added. Only components at least ``min_length`` px long (bounding side) grow,
    and only where the edge runs along them: a component keeps its growth when it adds at least ``min_run``
    pixels per pixel of its length (a crease's shadow runs its whole length; a photograph's edge that a false
    mark follows does so only here and there).

    A crease is a light band with a dark shadow edge (or the reverse), a light scratch may have a dark rim: a
    mask of the band alone leaves the edge, and a fill from the mask's border then draws the edge across it
    as a dark line. The growth is geodesic (one pixel at a time, each component only into pixels of the
    opposite polarity), so it follows the mark's own edge and stops at the paper or picture around it; a
    thin dark object (a cable, a line of writing) has no such edge and does not grow.
    """
    check_image(image)
    if not mask.any() or band < 1:
        return mask, 0
    residual = _luma_residual(image, median)
    labels, area, length = component_shapes(mask)
    sign = np.sign(np.bincount(labels.ravel(), residual.ravel(), len(area)))
    sign[(length < min_length) | (np.arange(len(area)) == 0)] = 0  # short components (and label 0) do not grow
    labels = np.where(sign[labels] != 0, labels, 0).astype(np.float32)
    square = np.ones((3, 3), np.uint8)
    for _ in range(band):
        owner = cv2.dilate(labels, square).astype(np.int32)
        new = (labels == 0) & (owner > 0) & (residual * sign[owner] < -level)
        if not new.any():
            break
        labels[new] = owner[new]
    added = (labels > 0) & ~mask
    run = np.bincount(labels[added].astype(np.int64), minlength=len(area)) / np.maximum(length, 1)
    short_run = run < min_run
    short_run[0] = True
    labels[added & short_run[labels.astype(np.int64)]] = 0
    grown = mask | (labels > 0)
    return grown, int(grown.sum() - mask.sum())


def detect_specks(
    image: np.ndarray,
    kernel: int = 11,
    threshold_sigma: float = 8.0,
    min_contrast: float = 0.3,
    max_area: int = 120,
    dilate: int = 1,
    levels: tuple[float, float] | None = None,
    line_min_length: int = 0,
    line_max_width: float = 3.0,
    texture_ratio: float = 0.0,
    texture_window: int = 31,
) -> np.ndarray:
    """Mask of small bright or dark defects: dust, specks, hair-line scratches.

    A pixel is a candidate when the white or black top-hat of luma (structuring element
    ``kernel`` px) exceeds both ``min_contrast`` and ``threshold_sigma`` robust sigmas of
    that top-hat. Connected candidates of at most ``max_area`` px are dust; larger ones are
    picture content unless they are scratches: with ``line_min_length`` > 0, a component at
    least that long (its longer bounding-box side) whose mean width (area / length) is at most
    ``line_max_width`` px is kept as a scratch. With ``texture_ratio`` > 0, a candidate must
    also stand out from its surroundings: its top-hat must exceed that many times the mean
    morphological gradient in a ``texture_window`` box, which keeps grass, foliage and fabric
    out of the mask. The mask is grown by ``dilate`` px to cover soft edges.
    ``levels`` (from :func:`speck_levels` on the whole image) replaces the measurement on
    ``image`` when it is a tile. Returns a bool ``(H, W)`` array.
    """
    check_image(image)
    if kernel < 3 or kernel % 2 == 0:
        raise ValueError(f"kernel must be an odd size >= 3, got {kernel}")
    gray = luminance(image)
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    mask = np.zeros(gray.shape, dtype=bool)
    texture = None
    if texture_ratio > 0:
        gradient = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        texture = texture_ratio * cv2.blur(gradient, (texture_window, texture_window))
    for k, op in enumerate((cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT)):
        response = cv2.morphologyEx(gray, op, element)
        level = levels[k] if levels is not None else max(min_contrast, threshold_sigma * _robust_sigma(response))
        found = response > level
        mask |= found if texture is None else found & (response > texture)
    if mask.any():
        labels, area, length = component_shapes(mask)
        keep = area <= max_area
        if line_min_length > 0:
            keep |= (length >= line_min_length) & (area <= line_max_width * length)
        keep[0] = False  # background label
        mask = keep[labels]
    if dilate > 0 and mask.any():
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        mask = cv2.dilate(mask.astype(np.uint8), grow).astype(bool)
    return mask


def inpaint_telea(image: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """Fill ``mask`` pixels from their surroundings (Telea's fast marching method)."""
    check_image(image)
    check_mask(mask, image.shape)
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    if not mask.any():
        return image
    # cv2.inpaint takes 3-channel images at 8 bits only; unmasked pixels keep full precision.
    filled8 = cv2.inpaint(np.rint(image * 255.0).astype(np.uint8), mask.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    out = image.copy()
    out[mask] = filled8[mask].astype(np.float32) / 255.0
    return out
