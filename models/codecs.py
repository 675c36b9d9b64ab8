"""Decoding scans into pixels and encoding restored pixels (pure; bytes in, bytes out).

Decoded pixels are ``(H, W, 3)`` uint8 or uint16 sRGB, upright (EXIF orientation applied),
converted from the master's embedded ICC profile, alpha composited on white; gray scans are
repeated over three channels. The pixel limit is checked from the header, before any pixel
is decoded (decompression-bomb safety). 16-bit PNG and TIFF masters stay 16-bit.

Encoded derivatives embed the sRGB profile, the master's EXIF (orientation reset) and DPI,
and an XMP processing history (:mod:`patina.models.image_metadata`); PNG and TIFF keep 16 bits.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from patina.models.color_management import SRGB_ICC, ColorProfileError, convert_to_srgb, is_srgb, profile_info
from patina.models.image import transport_to_pixels
from patina.models.image_metadata import OutputMetadata, SourceMetadata, png_with_metadata, read_exif

log = logging.getLogger(__name__)

OUTPUT_FORMATS = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "ptif": ".tif", "webp": ".webp"}
SIXTEEN_BIT_FORMATS = ("png", "tiff", "ptif")
PTIF_TILE = 256  # tile side of pyramidal TIFFs (what IIIF image servers serve)
_FAMILY = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "TIFF": "tiff", "WEBP": "webp"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


class DecodeError(ValueError):
    """The bytes are not an image patina can read (the message says why)."""


class ImageTooLarge(DecodeError):
    """The image has more pixels than the configured limit."""


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # (H, W, 3) uint8 or uint16, sRGB, upright
    format: str  # Pillow's format name, e.g. "JPEG"
    bit_depth: int  # 8 or 16
    metadata: SourceMetadata = field(default_factory=SourceMetadata)


HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
UNSNIFFED_MAX = 64 * 2**20
"""A master larger than this is refused when no image format recognises its first bytes (not read whole)."""


def _heif_hint(head: bytes) -> str | None:
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        kind = "AVIF" if head[8:12].startswith(b"avi") else "HEIC/HEIF"
        return (
            f"{kind} image ({head[8:12].decode()!r} brand): not decoded by patina; convert the master to TIFF "
            "or PNG (e.g. `heif-convert master.heic master.png`, or libvips) and list that in the manifest"
        )
    return None


def check_signature(head: bytes, size: int | None) -> None:
    """Refuse a master from its first bytes, before the rest is read: HEIF/AVIF (with what to do), and
    anything over :data:`UNSNIFFED_MAX` bytes (or of unknown size) that no image format recognises."""
    if hint := _heif_hint(head):
        raise DecodeError(hint)
    if size is not None and size <= UNSNIFFED_MAX:
        return  # small: Pillow tries every format on the whole file (some have no signature)
    Image.init()
    if not any(accept is not None and accept(head[:16]) for _, accept in Image.OPEN.values()):
        shown = f"{size} bytes" if size is not None else "of unknown size"
        raise DecodeError(f"not a recognised image format (no image signature in its first bytes; {shown}, not read)")


def decode_image(data: bytes, max_pixels: int) -> Decoded:
    """Decode image bytes; raise :class:`DecodeError` / :class:`ImageTooLarge` on bad input.

    ``max_pixels`` is the one pixel limit: Pillow's decompression-bomb limit follows it.
    """
    if not data:
        raise DecodeError("file is empty (0 bytes)")
    Image.MAX_IMAGE_PIXELS = None  # Pillow's own limit (179 MP) off: ours, from the header just below, governs
    image = _open(data)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}")
    fmt = image.format or "UNKNOWN"
    notes = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        kind = "frames (animated)" if getattr(image, "is_animated", False) and fmt != "TIFF" else "pages"
        notes.append(f"{fmt} has {frames} {kind}; only the first is restored")
        log.warning("%s with %d %s: only the first is restored", fmt, frames, kind)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            pixels, space = _raw_pixels(image, data, fmt)  # first: reading EXIF may load a PNG
    except _DECODE_ERRORS as exc:
        raise DecodeError(f"cannot decode image: {exc}") from exc
    try:
        exif, orientation, date_taken = read_exif(image)
    except _DECODE_ERRORS as exc:  # a damaged EXIF block loses the EXIF, not the picture
        exif, orientation, date_taken = b"", 1, None
        notes.append(f"EXIF block unreadable ({exc}): not carried to the derivative")
        log.warning("EXIF block unreadable (%s): dropped", exc)
    pixels, space = _flatten_alpha(pixels, space)
    icc = image.info.get("icc_profile")
    description = None
    if icc:
        try:
            description, profile_space = profile_info(icc)
            if profile_space != space:
                raise ColorProfileError(f"embedded {profile_space} ICC profile does not match {space} pixels")
            if not is_srgb(description):
                pixels, space = convert_to_srgb(pixels, icc), "rgb"
        except ColorProfileError as exc:
            if space == "cmyk":
                raise DecodeError(f"CMYK image with an unusable ICC profile: {exc}") from exc
            notes.append(f"ICC profile ignored, pixels taken as sRGB: {exc}")
    if space == "cmyk":  # no profile: Pillow's naive conversion (the best there is without one)
        pixels, space = np.asarray(Image.fromarray(pixels, "CMYK").convert("RGB")), "rgb"
    if space == "gray":
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = np.ascontiguousarray(apply_orientation(pixels, orientation))
    dpi = _dpi(image)
    meta = SourceMetadata(exif, dpi, date_taken, orientation, description, tuple(notes))
    return Decoded(pixels, fmt, 16 if pixels.dtype == np.uint16 else 8, meta)


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise DecodeError(_heif_hint(data[:16]) or "not a recognised image format") from exc
    except (*_DECODE_ERRORS, Image.DecompressionBombError) as exc:
        raise DecodeError(f"cannot read the image header: {exc}") from exc


def _raw_pixels(image: Image.Image, data: bytes, fmt: str) -> tuple[np.ndarray, str]:
    """Pixels in the master's own colour space: ``(array, 'gray'|'graya'|'rgb'|'rgba'|'cmyk')``."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        gray = np.asarray(image)
        return np.clip(gray, 0, 65535).astype(np.uint16), "gray"
    if ";16" in _rawmode(image) and mode in ("RGB", "RGBA", "LA"):
        return _sixteen_bit_color(data, fmt)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        image = image.convert("RGB")
    space = {"L": "gray", "LA": "graya", "RGB": "rgb", "RGBA": "rgba", "CMYK": "cmyk"}[image.mode]
    return np.asarray(image), space


def _rawmode(image: Image.Image) -> str:
    """How the file stores samples (e.g. ``RGB;16B``), from Pillow's first tile."""
    args = image.tile[0].args if image.tile else ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _sixteen_bit_color(data: bytes, fmt: str) -> tuple[np.ndarray, str]:
    """16-bit colour PNG / TIFF (Pillow would truncate them to 8 bits)."""
    if fmt == "TIFF":
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            pixels = page.asarray()
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and pixels.ndim == 3:
                pixels = np.moveaxis(pixels, 0, -1)
    else:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise ValueError(f"OpenCV cannot decode this 16-bit {fmt}")
        if pixels.ndim == 3:
            pixels = pixels[..., [2, 1, 0, 3][: pixels.shape[2]]]  # BGR(A) -> RGB(A)
    if pixels.dtype != np.uint16:
        raise ValueError(f"expected 16-bit samples, found {pixels.dtype}")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    space = {1: "gray", 2: "graya", 3: "rgb", 4: "rgba"}.get(channels)
    if space is None:
        raise ValueError(f"unsupported {channels}-channel 16-bit image")
    return pixels, space


def _flatten_alpha(pixels: np.ndarray, space: str) -> tuple[np.ndarray, str]:
    """Composite an alpha channel over white (prints have no transparency)."""
    if space not in ("graya", "rgba"):
        return pixels, space
    top = float(np.iinfo(pixels.dtype).max)
    alpha = pixels[..., -1:].astype(np.float32) / top
    color = pixels[..., :-1].astype(np.float32) * alpha + top * (1.0 - alpha)
    flat = np.rint(color).astype(pixels.dtype)
    return (flat[..., 0], "gray") if space == "graya" else (flat, "rgb")


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright for an EXIF orientation (1-8); returns a view."""
    if orientation in (5, 6, 7, 8):
        pixels = np.swapaxes(pixels, 0, 1)  # transpose, then flip as below
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    if flip_rows:
        pixels = pixels[::-1]
    if flip_cols:
        pixels = pixels[:, ::-1]
    return pixels


def _dpi(image: Image.Image) -> tuple[float, float] | None:
    dpi = image.info.get("dpi")
    if not dpi:
        return None
    try:
        x, y = (round(float(v), 2) for v in dpi)
    except (TypeError, ValueError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def output_format(source_format: str, configured: str) -> str:
    """The output format: ``configured`` unless ``auto``, then the master's family (PNG otherwise)."""
    if configured != "auto":
        if configured not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {configured!r}; choose auto or one of {sorted(OUTPUT_FORMATS)}")
        return configured
    return _FAMILY.get(source_format.upper(), "png")


def encode_image(
    pixels: np.ndarray,
    fmt: str,
    jpeg_quality: int = 95,
    metadata: OutputMetadata | None = None,
    tile_compression: str = "jpeg",
) -> bytes:
    """Encode ``(H, W, 3)`` uint8 or uint16 sRGB with its metadata; PNG and TIFF keep 16 bits.

    ``ptif``: a pyramidal tiled TIFF (:func:`pyramidal_tiff`) with ``tile_compression`` tiles."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be (H, W, 3) uint8/uint16, got {pixels.dtype} {pixels.shape}")
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}")
    meta = metadata or OutputMetadata()
    if pixels.dtype == np.uint16 and fmt not in SIXTEEN_BIT_FORMATS:
        pixels = transport_to_pixels(pixels, 8)
    if fmt == "png":
        ok, buffer = cv2.imencode(".png", pixels[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ValueError("OpenCV could not encode the PNG")
        return png_with_metadata(buffer.tobytes(), SRGB_ICC, meta)
    if fmt == "tiff":
        return _tiff(pixels, meta)
    if fmt == "ptif":
        return pyramidal_tiff(pixels, meta, tile_compression, jpeg_quality)
    options: dict = {"icc_profile": SRGB_ICC}
    if meta.exif:
        options["exif"] = meta.exif
    if meta.xmp:
        options["xmp"] = meta.xmp
    if fmt == "jpeg":
        options.update(quality=jpeg_quality, subsampling=0, optimize=True)
        if meta.dpi:
            options["dpi"] = meta.dpi
    else:
        options["lossless"] = True
    sink = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(sink, format=fmt.upper(), **options)
    return sink.getvalue()


def pyramid_levels(pixels: np.ndarray, tile: int = PTIF_TILE) -> list[np.ndarray]:
    """``pixels`` and its halvings (area-averaged), down to the first level that fits in one tile."""
    levels = [pixels]
    while max(levels[-1].shape[:2]) > tile:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA))
    return levels


def pyramidal_tiff(
    pixels: np.ndarray, meta: OutputMetadata, compression: str = "jpeg", quality: int = 95, tile: int = PTIF_TILE
) -> bytes:
    """A pyramidal tiled TIFF as IIIF image servers (Cantaloupe, IIPImage) read it: the full image in
    ``tile`` px tiles with ICC, resolution and XMP in the first IFD, each halving in a reduced-resolution
    SubIFD. ``compression``: ``jpeg`` (8 bits; 16-bit pixels are written with deflate instead, which
    JPEG cannot hold) or ``deflate``. BigTIFF past 2 GiB of pixels."""
    if compression not in ("jpeg", "deflate"):
        raise ValueError(f"unknown tile compression {compression!r}; choose jpeg or deflate")
    lossy = compression == "jpeg" and pixels.dtype == np.uint8
    options: dict = {
        "photometric": "rgb",
        "tile": (tile, tile),
        "compression": "jpeg" if lossy else "zlib",
        "compressionargs": {"level": quality} if lossy else None,
        "predictor": None if lossy else True,
        "metadata": None,
    }
    levels = pyramid_levels(pixels, tile)
    extratags = [(700, 1, len(meta.xmp), meta.xmp, True)] if meta.xmp else []
    sink = io.BytesIO()
    with tifffile.TiffWriter(sink, bigtiff=pixels.nbytes > 2**31) as tif:
        tif.write(
            pixels,
            subifds=len(levels) - 1,
            iccprofile=SRGB_ICC,
            resolution=meta.dpi,
            resolutionunit="INCH" if meta.dpi else None,
            software="patina",
            extratags=extratags,
            **options,
        )
        for level in levels[1:]:
            tif.write(level, subfiletype=1, **options)
    return sink.getvalue()


def _tiff(pixels: np.ndarray, meta: OutputMetadata) -> bytes:
    """Deflate-compressed RGB TIFF with ICC, resolution and XMP (tag 700)."""
    extratags = [(700, 1, len(meta.xmp), meta.xmp, True)] if meta.xmp else []
    sink = io.BytesIO()
    tifffile.imwrite(
        sink,
        pixels,
        photometric="rgb",
        compression="zlib",
        predictor=True,
        iccprofile=SRGB_ICC,
        resolution=meta.dpi,
        resolutionunit="INCH" if meta.dpi else None,
        software="patina",
        metadata=None,
        extratags=extratags,
    )
    return sink.getvalue()
