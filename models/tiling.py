"""Large scans, the one place that tiles: a stage over an image too big for whole float copies.

A 12000 x 9000 scan is 648 MB as uint16 transport pixels but 1.3 GB per float32 copy, and a
stage makes several. Above :attr:`LargeImagePolicy.min_pixels` an image therefore never
becomes one float32 array:

* a stage that only measures (``changes_pixels = False``) runs on a downscaled proxy;
* a local stage (``tile_halo()`` not None) first :meth:`~patina.models.stage.Stage.analyze`\\ s
  a sample (a proxy, or a full-resolution centre crop), then runs tile by tile: each tile
  plus its halo becomes float32, and only its interior is written back into one uint16
  result (allocated only when a tile changes pixels).

Stages needing the whole image (``tile_halo()`` None) still get it whole.

Inside a stage, a neural network runs over overlapping tiles with :func:`blend_tiles`: tiles
overlap by a margin and are blended with linear ramps across it, so no seam shows and the
network's activations stay bounded by the tile size whatever the image size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import cv2
import numpy as np
from annotated_types import Ge

from patina.models.image import to_transport, to_working
from patina.models.stage import Stage, StageInput


@dataclass(frozen=True)
class LargeImagePolicy:
    """Scans above ``min_pixels`` run tile by tile, never as one float32 array (``[large_images]`` in a config)."""

    __pydantic_config__ = {"extra": "forbid"}  # noqa: RUF012 - read by pydantic, never mutated

    min_pixels: Annotated[int, Ge(1)] = 16_000_000  # images with more pixels are tiled
    tile: Annotated[int, Ge(64)] = 2048  # tile side, pixels (before the halo)
    proxy_pixels: Annotated[int, Ge(4096)] = 4_000_000  # size of the proxy a measuring stage sees
    crop: Annotated[int, Ge(64)] = 2048  # side of the full-resolution crop for ``analysis_sample = "crop"``


@dataclass(frozen=True)
class TiledResult:
    transport: np.ndarray  # uint16 (H, W, 3): the input itself when no tile changed pixels
    mask: np.ndarray | None  # bool (H, W), or None: keep the incoming mask
    decisions: dict[str, Any]
    applied: bool


def is_large(shape: Sequence[int], policy: LargeImagePolicy) -> bool:
    return shape[0] * shape[1] > policy.min_pixels


def can_tile(stage: Stage) -> bool:
    return not stage.changes_pixels or stage.tile_halo() is not None


def proxy(transport: np.ndarray, max_pixels: int) -> np.ndarray:
    """A working-image proxy of at most ``max_pixels`` (area-averaged)."""
    h, w = transport.shape[:2]
    scale = min(1.0, math.sqrt(max_pixels / (h * w)))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = transport if scale == 1.0 else cv2.resize(transport, size, interpolation=cv2.INTER_AREA)
    return to_working(small)


def centre_crop(transport: np.ndarray, side: int) -> np.ndarray:
    """The full-resolution centre ``side`` x ``side`` (at most) of the image, as a working image."""
    h, w = transport.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return to_working(transport[top : top + side, left : left + side])


def run_large(
    stage: Stage,
    transport: np.ndarray,
    mask: np.ndarray | None,
    decisions: Mapping[str, Mapping[str, Any]],
    policy: LargeImagePolicy,
) -> TiledResult:
    """Run ``stage`` on a large uint16 transport image without a whole float32 copy."""
    if not can_tile(stage):
        raise ValueError(f"{stage.spec.id} needs the whole image and cannot be tiled")
    h, w = transport.shape[:2]
    if stage.analysis_sample == "crop":
        sample = centre_crop(transport, policy.crop)
    else:
        sample = proxy(transport, policy.proxy_pixels)
    analysis = stage.analyze(StageInput(sample, None, decisions))
    sampled = {"sample": f"{stage.analysis_sample} {sample.shape[1]}x{sample.shape[0]}"}
    if not stage.changes_pixels:
        out = stage.process(StageInput(sample, None, decisions, analysis))
        return TiledResult(transport, out.mask, {**out.decisions, "large_image": sampled}, out.applied)
    halo, tile = stage.tile_halo(), policy.tile
    result, new_mask = None, None
    parts, weights, applied = [], [], False
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            y0, y1 = max(0, top - halo), min(h, top + tile + halo)
            x0, x1 = max(0, left - halo), min(w, left + tile + halo)
            inner = (slice(top - y0, min(top + tile, h) - y0), slice(left - x0, min(left + tile, w) - x0))
            target = (slice(top, min(top + tile, h)), slice(left, min(left + tile, w)))
            piece = to_working(transport[y0:y1, x0:x1])
            piece_mask = mask[y0:y1, x0:x1] if mask is not None else None
            out = stage.process(StageInput(piece, piece_mask, decisions, analysis))
            if out.image is not piece:
                if result is None:
                    result = transport.copy()
                result[target] = to_transport(np.ascontiguousarray(out.image[inner]))
            if out.mask is not None:
                if new_mask is None:
                    new_mask = mask.copy() if mask is not None else np.zeros((h, w), dtype=bool)
                new_mask[target] = out.mask[inner]
            parts.append((out.applied, dict(out.decisions)))
            weights.append((target[0].stop - target[0].start) * (target[1].stop - target[1].start))
            applied |= out.applied
    tiles = {**sampled, "tiles": len(parts), "tile": tile, "halo": halo}
    acted = [k for k, (did, _) in enumerate(parts) if did] if applied else range(len(parts))
    merged = combine_decisions([parts[k][1] for k in acted], [weights[k] for k in acted])
    merged["large_image"] = tiles
    return TiledResult(transport if result is None else result, new_mask, merged, applied)


def combine_decisions(parts: Sequence[Mapping[str, Any]], weights: Sequence[int]) -> dict[str, Any]:
    """One decisions dict from the tiles': counts (int) summed, measures (float) area-weighted, others the first."""
    if not parts:
        return {}
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for p in parts for k in p):
        present = [(p[key], wt) for p, wt in zip(parts, weights, strict=True) if key in p]
        values = [v for v, _ in present]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            merged[key] = sum(values)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            total = float(sum(wt for _, wt in present)) or 1.0
            merged[key] = round(sum(v * wt for v, wt in present) / total, 6)
        else:
            merged[key] = values[0]
    return merged


def _ramp(length: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """Blend weights along one tile axis: rising over the leading overlap, falling over the trailing one."""
    weight = np.ones(length, np.float32)
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap if overlap else np.empty(0, np.float32)
    if not first and overlap:
        weight[:overlap] = ramp
    if not last and overlap:
        weight[length - overlap :] = np.minimum(weight[length - overlap :], ramp[::-1])
    return weight


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def blend_tiles(
    run: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int, overlap: int, scale: int = 1
) -> np.ndarray:
    """``run`` (an ``(h, w, C)`` float32 -> ``(h*scale, w*scale, C')`` map) over ``image`` in tiles.

    Tiles of ``tile`` px overlap by ``overlap`` px and are blended with linear ramps; an image
    no larger than one tile goes through ``run`` whole. Peak memory is one tile's activations
    plus the ``(H*scale, W*scale)`` float32 result and its weights.
    """
    h, w = image.shape[:2]
    if h <= tile and w <= tile:
        return run(image)
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"tile overlap {overlap} must be in [0, tile/2) for tile {tile}")
    step = tile - overlap
    rows, cols = _starts(h, tile, step), _starts(w, tile, step)
    out = weight_sum = None
    for y in rows:
        for x in cols:
            piece = run(image[y : y + tile, x : x + tile])
            ph, pw = piece.shape[:2]
            if out is None:
                out = np.zeros((h * scale, w * scale, piece.shape[2]), np.float32)
                weight_sum = np.zeros((h * scale, w * scale, 1), np.float32)
            o = overlap * scale
            weight = np.outer(_ramp(ph, o, y == rows[0], y == rows[-1]), _ramp(pw, o, x == cols[0], x == cols[-1]))[
                ..., None
            ]
            ys, xs = y * scale, x * scale
            out[ys : ys + ph, xs : xs + pw] += piece * weight
            weight_sum[ys : ys + ph, xs : xs + pw] += weight
    return out / weight_sum
