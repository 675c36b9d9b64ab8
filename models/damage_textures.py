"""Real damage textures: cracks, scratches, spots and flakes cut from real prints, pasted on clean images.

As Bringing-Old-Photos-Back-to-Life composited real scratch textures, patina's detector learns
from damage harvested off real old prints (``benchmarks/real_damage.py textures``: the ``dev``
crops of the real-damage set, never its ``val`` ones). A texture is what the damage adds to the
picture, not the picture: luma minus its local median inside the damage mask, so it can be laid
over any clean image. Pure functions; the bank is a ``.npz`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from patina.models.image import check_image, check_mask, luminance
from patina.models.synthetic import Degraded, visible_change

BACKGROUND_PX = 31  # median window of the local background; wider than the widest crack on the crops


@dataclass(frozen=True)
class DamageTexture:
    mask: np.ndarray  # bool (h, w): the damaged pixels
    residual: np.ndarray  # float32 (h, w): what the damage added to luma there (0 outside the mask)


def median_residual(gray: np.ndarray, window: int = BACKGROUND_PX) -> np.ndarray:
    """``gray`` (H, W) in [0, 1] minus its ``window`` px median (at 8 bits): what thin damage adds to the
    picture around it."""
    return gray - cv2.medianBlur(np.rint(gray * 255).astype(np.uint8), window).astype(np.float32) / 255.0


def harvest(image: np.ndarray, mask: np.ndarray, min_area: int = 4) -> list[DamageTexture]:
    """One texture per connected damage region (grown 2 px to keep a crack's pieces together) of ``mask``."""
    check_image(image)
    check_mask(mask, image.shape)
    residual = np.where(mask, median_residual(luminance(image)), 0.0).astype(np.float32)
    grouped = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    found = []
    for label in range(1, count):
        x, y, w, h, _ = stats[label]
        piece = (labels[y : y + h, x : x + w] == label) & mask[y : y + h, x : x + w]
        if piece.sum() >= min_area:
            found.append(DamageTexture(piece, np.where(piece, residual[y : y + h, x : x + w], 0.0).astype(np.float32)))
    return found


def save_textures(path: Path, textures: list[DamageTexture]) -> None:
    arrays = {}
    for index, texture in enumerate(textures):
        arrays[f"mask_{index}"] = texture.mask
        arrays[f"residual_{index}"] = texture.residual.astype(np.float16)
    np.savez_compressed(path, **arrays)


def load_textures(path: Path | str) -> tuple[DamageTexture, ...]:
    """The bank written by :func:`save_textures`; ``ValueError`` naming the file when it is not one."""
    try:
        with np.load(path) as data:
            count = sum(1 for k in data.files if k.startswith("mask_"))
            textures = tuple(
                DamageTexture(data[f"mask_{i}"].astype(bool), data[f"residual_{i}"].astype(np.float32))
                for i in range(count)
            )
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"damage textures {path}: not a texture bank ({exc})") from exc
    if not textures:
        raise ValueError(f"damage textures {path}: no damage textures in it")
    return textures


def _transformed(texture: DamageTexture, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask, residual = texture.mask, texture.residual
    turns = int(rng.integers(4))
    mask, residual = np.rot90(mask, turns), np.rot90(residual, turns)
    if rng.random() < 0.5:
        mask, residual = mask[:, ::-1], residual[:, ::-1]
    scale = float(rng.uniform(0.7, 1.4))
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    residual = cv2.resize(np.ascontiguousarray(residual), size, interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(np.ascontiguousarray(mask).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return mask, residual * float(rng.uniform(0.7, 1.3))


def composite(
    image: np.ndarray, textures: tuple[DamageTexture, ...], rng: np.random.Generator, count: int = 3
) -> Degraded:
    """``count`` textures drawn from ``textures``, turned, flipped, scaled and added to the luma of ``image``
    at random places; the mask is where the change is visible."""
    check_image(image)
    if not textures:
        raise ValueError("no damage textures to composite")
    h, w = image.shape[:2]
    shift = np.zeros((h, w), np.float32)
    for _ in range(count):
        mask, residual = _transformed(textures[int(rng.integers(len(textures)))], rng)
        th, tw = mask.shape
        y, x = int(rng.integers(-th // 2, max(h - th // 2, 1))), int(rng.integers(-tw // 2, max(w - tw // 2, 1)))
        y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + th, h), min(x + tw, w)
        if y1 <= y0 or x1 <= x0:
            continue
        shift[y0:y1, x0:x1] += residual[y0 - y : y1 - y, x0 - x : x1 - x]
    out = np.clip(image + shift[..., None], 0.0, 1.0).astype(np.float32)
    return Degraded(out, visible_change(image, out))
