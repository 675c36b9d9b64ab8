"""Decoding scans into pixels and encoding restored pixels (pure; bytes in, bytes out).

Decoded pixels are ``(H, W, 3)`` uint8 or uint16 RGB with EXIF orientation applied; gray
scans are repeated over three channels. The pixel limit is checked from the header, before
any pixel is decoded (decompression-bomb safety).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

OUTPUT_FORMATS = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp"}
_FAMILY = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "TIFF": "tiff", "WEBP": "webp"}


class DecodeError(ValueError):
    """The bytes are not an image patina can read (the message says why)."""


class ImageTooLarge(DecodeError):
    """The image has more pixels than the configured limit."""


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (H, W, 3) uint8 or uint16
    format: str  # Pillow's format name, e.g. "JPEG"
    bit_depth: int  # 8 or 16


def decode_image(data: bytes, max_pixels: int) -> Decoded:
    """Decode image bytes; raise :class:`DecodeError` / :class:`ImageTooLarge` on bad input."""
    if not data:
        raise DecodeError("file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}")
            image.load()
            fmt = image.format or "UNKNOWN"
            image = ImageOps.exif_transpose(image)
    except ImageTooLarge:
        raise
    except UnidentifiedImageError as exc:
        raise DecodeError("not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(f"cannot decode image: {exc}") from exc
    return _decoded(image, fmt)


def _decoded(image: Image.Image, fmt: str) -> Decoded:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(image, dtype=np.uint32 if image.mode == "I" else None)
        gray = np.clip(gray, 0, 65535).astype(np.uint16)
        return Decoded(np.repeat(gray[..., None], 3, axis=2), fmt, 16)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return Decoded(np.asarray(image.convert("RGB"), dtype=np.uint8).copy(), fmt, 8)


def output_format(source_format: str, configured: str) -> str:
    """The output format: ``configured`` unless ``auto``, then the master's family (PNG otherwise)."""
    if configured != "auto":
        if configured not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {configured!r}; choose auto or one of {sorted(OUTPUT_FORMATS)}")
        return configured
    return _FAMILY.get(source_format.upper(), "png")


def encode_image(pixels: np.ndarray, fmt: str, jpeg_quality: int = 95) -> bytes:
    """Encode ``(H, W, 3)`` uint8 or uint16 RGB; 16 bits are kept by PNG and TIFF."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be (H, W, 3) uint8/uint16, got {pixels.dtype} {pixels.shape}")
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}")
    if pixels.dtype == np.uint16 and fmt in ("png", "tiff"):
        ok, buffer = cv2.imencode(OUTPUT_FORMATS[fmt], cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"OpenCV could not encode a 16-bit {fmt}")
        return buffer.tobytes()
    if pixels.dtype == np.uint16:
        pixels = np.rint(pixels / 257.0).astype(np.uint8)
    sink = io.BytesIO()
    options = {
        "jpeg": {"quality": jpeg_quality, "subsampling": 0, "optimize": True},
        "png": {"optimize": False},
        "tiff": {"compression": "tiff_deflate"},
        "webp": {"lossless": True},
    }[fmt]
    Image.fromarray(pixels, "RGB").save(sink, format=fmt.upper(), **options)
    return sink.getvalue()
