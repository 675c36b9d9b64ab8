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
from patina.models.tone import apply_density_curves

SEPIA_DARK = np.array([0.16, 0.09, 0.04], dtype=np.float32)
SEPIA_LIGHT = np.array([1.0, 0.94, 0.80], dtype=np.float32)
PAPER = np.array([0.92, 0.88, 0.76], dtype=np.float32)


@dataclass(frozen=True)
class Degraded:
    image: np.ndarray  # working float32 (H, W, 3)
    mask: np.ndarray  # bool (H, W): pixels whose content the damage destroyed


VISIBLE = 0.04  # luma change above which a damaged pixel counts in the mask (what an eye marks on a real print)


def visible_change(before: np.ndarray, after: np.ndarray, level: float = VISIBLE) -> np.ndarray:
    """Mask of the pixels whose luma the damage changed by more than ``level``."""
    return np.abs(luminance(after) - luminance(before)) > level


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


def dye_fade(
    image: np.ndarray,
    dyes: tuple[float, float, float] = (0.6, 0.9, 0.75),
    stain: tuple[float, float, float] = (0.0, 0.02, 0.12),
) -> Degraded:
    """Fading of a colour (chromogenic) print, in density: each dye keeps ``dyes`` of its density
    (cyan, magenta, yellow: the red, green and blue channels' absorbers) and a stain adds ``stain``
    (yellowing: blue-channel density). The default is a typical dark-stored 1970s print: cyan lost
    most, then yellow, and a yellowed base."""
    check_image(image)
    if not all(0.0 < k <= 1.0 for k in dyes) or not all(0.0 <= s < 1.0 for s in stain):
        raise ValueError(f"dyes must be in (0, 1] and stain in [0, 1), got {dyes}, {stain}")
    return Degraded(apply_density_curves(image, np.array(dyes), np.array(stain)), _none(image))


def random_dye_fade(image: np.ndarray, rng: np.random.Generator) -> Degraded:
    """:func:`dye_fade` with a random dye lost most (cyan twice as often), the others less, and a random stain."""
    dyes = rng.uniform(0.75, 0.97, size=3)
    dyes[rng.choice(3, p=[0.5, 0.25, 0.25])] = rng.uniform(0.4, 0.7)
    stain = np.array([rng.uniform(0, 0.03), rng.uniform(0, 0.05), rng.uniform(0.0, 0.18)])
    return dye_fade(image, tuple(dyes), tuple(stain))


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


def crease(image: np.ndarray, rng: np.random.Generator, width: int = 3, bright: bool = True) -> Degraded:
    """A fold line across the print: a bright broken-emulsion line with a shadow beside it, or (``bright``
    false) a dark fold with a light edge. The mask holds the fold and every pixel of its edge the fold
    visibly changed: a fill of the fold alone leaves the shadow as a dark line."""
    check_image(image)
    h, w = image.shape[:2]
    canvas = np.zeros((h, w), dtype=np.uint8)
    start = (0, int(rng.uniform(0.2, 0.8) * h))
    end = (w - 1, int(rng.uniform(0.2, 0.8) * h))
    cv2.line(canvas, start, end, 255, width, cv2.LINE_AA)
    fold = canvas > 64
    edge = np.zeros_like(canvas)
    cv2.line(edge, (start[0], start[1] + width), (end[0], end[1] + width), 255, width * 2, cv2.LINE_AA)
    strength = (0.25 * (edge[..., None] / 255.0)).astype(np.float32)
    shaded = image * (1 - strength) if bright else image + strength * (1 - image)
    out = _paint(shaded.astype(np.float32), fold, 0.95 if bright else 0.1, 0.85)
    return Degraded(out, fold | visible_change(image, out))


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


def _branching_walk(
    canvas: np.ndarray, point: np.ndarray, angle: float, steps: int, step: float, width: int,
    rng: np.random.Generator, depth: int,
) -> None:  # fmt: skip
    """Draw a crack: a jittery walk that may fork (recursively, thinner) and ends at the print's edge."""
    h, w = canvas.shape
    for _ in range(steps):
        angle += rng.normal(0, 0.15)
        nxt = point + step * np.array([np.cos(angle), np.sin(angle)])
        cv2.line(canvas, tuple(point.round().astype(int)), tuple(nxt.round().astype(int)), 255, width, cv2.LINE_AA)
        point = nxt
        if not (-step <= point[0] <= w + step and -step <= point[1] <= h + step):
            return
        if depth < 2 and rng.random() < 0.03:
            fork = angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.3)
            _branching_walk(canvas, point, fork, int(steps * 0.5), step, max(1, width - 1), rng, depth + 1)


def crack_network(
    image: np.ndarray, rng: np.random.Generator, cracks: int = 3, width: tuple[int, int] = (1, 5),
    bright: bool = True, contrast: tuple[float, float] = (0.25, 0.8), flakes: int = 6,
) -> Degraded:  # fmt: skip
    """Emulsion cracks as on real prints: long forking cracks across the picture, 1-5 px wide, white where
    the emulsion is gone (``bright``) or dark in a tarnished plate, with flakes of emulsion lost along
    them. Widths and contrasts follow the real-damage crops (``benchmarks/real_damage.py``)."""
    check_image(image)
    h, w = image.shape[:2]
    canvas = np.zeros((h, w), dtype=np.uint8)
    for _ in range(cracks):
        start = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        angle = rng.uniform(0, 2 * np.pi)
        steps = max(h, w) // 2  # of 4 px: a walk twice the print's side, unless it leaves the print first
        _branching_walk(canvas, start, angle, steps, 4.0, int(rng.integers(width[0], width[1] + 1)), rng, 0)
    skeleton = np.argwhere(canvas > 128)
    for _ in range(flakes if len(skeleton) else 0):
        y, x = skeleton[int(rng.integers(len(skeleton)))]
        axes = (int(rng.integers(1, 5)), int(rng.integers(1, 4)))
        cv2.ellipse(canvas, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    alpha = (canvas.astype(np.float32) / 255.0) * float(rng.uniform(*contrast)) / max(contrast[1], 1e-6)
    value = float(rng.uniform(0.82, 0.98)) if bright else float(rng.uniform(0.02, 0.15))
    out = image * (1 - alpha[..., None]) + value * alpha[..., None]
    return Degraded(out.astype(np.float32), visible_change(image, out))


def long_scratches(
    image: np.ndarray, rng: np.random.Generator, count: int = 2, contrast: tuple[float, float] = (0.05, 0.35),
) -> Degraded:  # fmt: skip
    """Long straight or gently bent scratches crossing the whole print, 1-2 px, often faint, bright or dark."""
    check_image(image)
    h, w = image.shape[:2]
    out = image.copy()
    for _ in range(count):
        canvas = np.zeros((h, w), dtype=np.uint8)
        angle = rng.uniform(0, np.pi)
        centre = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        direction = np.array([np.cos(angle), np.sin(angle)])
        reach = np.hypot(h, w)
        bend = rng.normal(0, 0.02) * reach * np.array([-direction[1], direction[0]])
        ts = np.linspace(-1, 1, 16)
        points = centre + ts[:, None] * reach * direction + (1 - ts[:, None] ** 2) * bend
        cv2.polylines(canvas, [points.round().astype(np.int32)], False, 255, int(rng.integers(1, 3)), cv2.LINE_AA)
        alpha = canvas.astype(np.float32) / 255.0
        gaps = cv2.resize(rng.random((1, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        alpha *= (gaps > 0.25).astype(np.float32)  # scratches come and go along their length
        strength = float(rng.uniform(*contrast))
        value = 1.0 if rng.random() < 0.7 else 0.0
        out = out * (1 - strength * alpha[..., None]) + value * strength * alpha[..., None]
    return Degraded(out.astype(np.float32), visible_change(image, out))


def torn_edge(image: np.ndarray, rng: np.random.Generator, depth: float = 0.08) -> Degraded:
    """Paper lost along one edge: a ragged strip where the mount or scanner lid shows (near white or dark)."""
    check_image(image)
    h, w = image.shape[:2]
    side = int(rng.integers(0, 4))
    n = 24
    along = np.linspace(0, 1, n)
    reach = np.clip(np.cumsum(rng.normal(0, 0.25, n)) + rng.uniform(0.2, 1.0), 0, None) * depth
    canvas = np.zeros((h, w), dtype=np.uint8)
    if side in (0, 1):  # top or bottom
        edge = [(a * (w - 1), r * h if side == 0 else (h - 1) - r * h) for a, r in zip(along, reach, strict=True)]
        corners = [(w - 1, 0 if side == 0 else h - 1), (0, 0 if side == 0 else h - 1)]
    else:  # left or right
        edge = [(r * w if side == 2 else (w - 1) - r * w, a * (h - 1)) for a, r in zip(along, reach, strict=True)]
        corners = [(0 if side == 2 else w - 1, h - 1), (0 if side == 2 else w - 1, 0)]
    cv2.fillPoly(canvas, [np.array([*edge, *corners], np.float32).round().astype(np.int32)], 255)
    mask = canvas > 0
    return Degraded(_paint(image, mask, 0.93 if rng.random() < 0.7 else 0.1, 1.0), mask)


_INSCRIPTION_CHARS = "ABCDEFGHIJKLMNOPRSTUVWabcdefghijklmnoprstuvwyz0123456789.,-/ "


def inscription(image: np.ndarray, rng: np.random.Generator, lines: int = 1) -> Degraded:
    """Writing on the print that is part of the object, not damage: ``lines`` of pen or pencil script,
    a printed caption or a stamped number, dark (sometimes blue or white) ink, slanted, at a random size
    and place. The mask is empty: a detector trained on it learns to leave writing alone."""
    from PIL import Image, ImageDraw, ImageFont

    check_image(image)
    h, w = image.shape[:2]
    ink = np.zeros((h, w), np.float32)
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(lines):
        size = int(rng.integers(9, max(10, min(h, w) // 6)))
        font = ImageFont.load_default(size=size)
        text = "".join(rng.choice(list(_INSCRIPTION_CHARS), int(rng.integers(3, 24))))
        x, y = int(rng.integers(-size, max(1, w - size))), int(rng.integers(0, max(1, h - size)))
        draw.text((x, y), text, fill=255, font=font, stroke_width=int(rng.random() < 0.3))
    shear = float(rng.uniform(-0.35, 0.15))  # script leans right; printed captions stand
    matrix = np.float32([[1, shear, -shear * h / 2], [0, 1, 0]])
    ink = cv2.warpAffine(np.asarray(canvas, np.float32) / 255.0, matrix, (w, h))
    if rng.random() < 0.5:  # pencil or worn ink: broken, soft strokes
        ink *= cv2.resize(rng.uniform(0.4, 1.0, (max(1, h // 3), max(1, w // 3))).astype(np.float32), (w, h))
        ink = cv2.GaussianBlur(ink, (0, 0), 0.6)
    colour = rng.choice([np.float32([0.08, 0.07, 0.06]), np.float32([0.15, 0.2, 0.45]), np.float32([0.95, 0.95, 0.92])],
                        p=[0.7, 0.2, 0.1])  # fmt: skip
    strength = float(rng.uniform(0.5, 0.95))
    alpha = (strength * ink)[..., None]
    out = (image * (1 - alpha) + colour * alpha).astype(np.float32)
    return Degraded(out, _none(image))
