"""ICC colour management: masters' embedded profiles -> the sRGB working space (pure).

Working images are sRGB (:mod:`patina.models.image`). A master with an embedded profile
(Adobe RGB, ProPhoto, a gray gamma, a CMYK press profile) is converted into sRGB with
LittleCMS (through ``imagecodecs``, which handles 8- and 16-bit data alike, unlike Pillow's
``ImageCms``), band by band so that a large scan never needs a float copy. Outputs embed
:data:`SRGB_ICC`, the profile of the pixels they hold.
"""

from __future__ import annotations

import io
import logging

import imagecodecs
import numpy as np
from PIL import ImageCms

log = logging.getLogger(__name__)

SRGB_ICC: bytes = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
"""The sRGB profile embedded in every derivative (LittleCMS's built-in sRGB)."""

_COLORSPACES = {"RGB": "rgb", "GRAY": "gray", "CMYK": "cmyk"}
BAND_PIXELS = 4_000_000  # pixels converted per band: bounds the converter's working memory


class ColorProfileError(ValueError):
    """An embedded ICC profile cannot be read or applied (the message says why)."""


def profile_info(icc: bytes) -> tuple[str, str]:
    """``(description, colour space)`` of an ICC profile; colour space is ``rgb``, ``gray`` or ``cmyk``."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    except (OSError, TypeError, ValueError) as exc:
        raise ColorProfileError(f"embedded ICC profile is unreadable: {exc}") from exc
    space = _COLORSPACES.get(profile.xcolor_space.strip())
    if space is None:
        raise ColorProfileError(f"ICC profile colour space {profile.xcolor_space.strip()!r} is not supported")
    description = (profile.profile_description or profile.product_description or "unnamed").strip()
    return description, space


def is_srgb(description: str) -> bool:
    """Whether a profile description names sRGB (then no conversion is needed)."""
    return "srgb" in description.lower().replace(" ", "")


def convert_to_srgb(pixels: np.ndarray, icc: bytes) -> np.ndarray:
    """Convert pixels in the colour space of ``icc`` to sRGB RGB of the same dtype.

    ``pixels``: ``(H, W)`` gray, ``(H, W, 3)`` RGB or ``(H, W, 4)`` CMYK, uint8 or uint16,
    matching the profile's colour space. Returns ``(H, W, 3)``, converted in row bands.
    """
    _, space = profile_info(icc)
    channels = {"gray": 1, "rgb": 3, "cmyk": 4}[space]
    have = 1 if pixels.ndim == 2 else pixels.shape[2]
    if have != channels or pixels.dtype not in (np.uint8, np.uint16):
        raise ColorProfileError(f"a {space} profile cannot apply to {pixels.dtype} pixels with {have} channel(s)")
    height, width = pixels.shape[:2]
    out = np.empty((height, width, 3), dtype=pixels.dtype)
    rows = max(1, BAND_PIXELS // max(width, 1))
    try:
        for top in range(0, height, rows):
            band = np.ascontiguousarray(pixels[top : top + rows])
            out[top : top + rows] = imagecodecs.cms_transform(
                band, icc, SRGB_ICC, colorspace=space, outcolorspace="rgb"
            )
    except (imagecodecs.CmsError, ValueError, TypeError) as exc:
        raise ColorProfileError(f"cannot convert from the embedded {space} ICC profile: {exc}") from exc
    return out
