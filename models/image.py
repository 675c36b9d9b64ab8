"""The image contract every stage shares, defined once.

Working images are ``float32`` arrays of shape ``(H, W, 3)``: RGB, sRGB-encoded (not linear),
values in ``[0, 1]``. Grayscale sources arrive as three equal channels. Damage masks are
``bool`` arrays of shape ``(H, W)``, ``True`` where a pixel is damaged.

Between stages images travel as ``uint16`` (the *transport* encoding: lossless for 8- and
16-bit masters, half the bytes of float32); :func:`to_working` and :func:`to_transport`
convert, and are the only place that does.
"""

from __future__ import annotations

import cv2
import numpy as np

TRANSPORT_DTYPE = np.uint16
_TRANSPORT_MAX = float(np.iinfo(TRANSPORT_DTYPE).max)


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` if it meets the working contract, else raise ``ValueError``."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    if image.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {image.dtype}")
    return image


def check_mask(mask: np.ndarray, shape: tuple[int, ...], name: str = "mask") -> np.ndarray:
    """Return ``mask`` if it is a bool ``(H, W)`` array matching ``shape[:2]``."""
    if mask.dtype != np.bool_ or mask.shape != tuple(shape[:2]):
        raise ValueError(f"{name} must be bool of shape {tuple(shape[:2])}, got {mask.dtype} {mask.shape}")
    return mask


def to_working(pixels: np.ndarray) -> np.ndarray:
    """Integer pixels ``(H, W, 3)`` (uint8 or uint16) -> working float32 in [0, 1]."""
    if pixels.dtype == np.uint8:
        return np.multiply(pixels, np.float32(1.0 / 255.0), dtype=np.float32)
    if pixels.dtype == np.uint16:
        return np.multiply(pixels, np.float32(1.0 / _TRANSPORT_MAX), dtype=np.float32)
    raise ValueError(f"pixels must be uint8 or uint16, got {pixels.dtype}")


def to_transport(image: np.ndarray) -> np.ndarray:
    """Working float32 image -> uint16 transport pixels (values clipped to [0, 1])."""
    check_image(image)
    scaled = np.multiply(image, np.float32(_TRANSPORT_MAX))
    np.clip(scaled, 0.0, _TRANSPORT_MAX, out=scaled)
    return np.rint(scaled, out=scaled).astype(TRANSPORT_DTYPE)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Working float32 image -> uint8 pixels for 8-bit encoders."""
    check_image(image)
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 709 luma of a working image, shape ``(H, W)``, float32."""
    check_image(image)
    return image @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def lab_ab(image: np.ndarray) -> np.ndarray:
    """CIELAB a*, b* ``(H, W, 2)`` of a working RGB image (OpenCV's float conversion, about -128..127)."""
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2LAB)[..., 1:]


def with_ab(image: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """``image`` with its CIELAB lightness kept and a*, b* replaced by ``ab`` (same size), clipped to [0, 1]."""
    lab = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2LAB)
    lab[..., 1:] = ab
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0.0, 1.0)


AB_RANGE = 256.0
"""Colorizing networks of our own predict CIELAB a*b* as ``ab / AB_RANGE + 0.5``, which lies in [0, 1]."""


def encode_ab(ab: np.ndarray) -> np.ndarray:
    return (ab / AB_RANGE + 0.5).astype(np.float32)


def decode_ab(encoded: np.ndarray) -> np.ndarray:
    return ((encoded - 0.5) * AB_RANGE).astype(np.float32)


def pixels_to_transport(pixels: np.ndarray) -> np.ndarray:
    """Decoded uint8 or uint16 pixels -> uint16 transport pixels (exact)."""
    if pixels.dtype == np.uint8:
        return pixels.astype(TRANSPORT_DTYPE) * 257
    if pixels.dtype == np.uint16:
        return pixels
    raise ValueError(f"pixels must be uint8 or uint16, got {pixels.dtype}")


def transport_to_pixels(transport: np.ndarray, bit_depth: int) -> np.ndarray:
    """uint16 transport pixels -> uint8 (``bit_depth`` 8) or uint16 (16) pixels for encoding."""
    if bit_depth == 16:
        return transport
    if bit_depth == 8:  # round(v / 257): OpenCV's saturating convert, exact for all 65536 values (tested)
        return cv2.convertScaleAbs(transport, alpha=1.0 / 257.0)
    raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
