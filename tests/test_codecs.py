import io

import numpy as np
import pytest
from PIL import Image

from patina.models.codecs import DecodeError, ImageTooLarge, decode_image, encode_image, output_format


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    sink = io.BytesIO()
    image.save(sink, format=fmt, **kwargs)
    return sink.getvalue()


def _rgb(h=12, w=20):
    return (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)


@pytest.mark.parametrize("fmt", ["png", "tiff", "webp"])
def test_lossless_round_trip(fmt):
    pixels = _rgb()
    decoded = decode_image(encode_image(pixels, fmt), max_pixels=10_000)
    assert decoded.bit_depth == 8 and np.array_equal(decoded.pixels, pixels)


def test_jpeg_round_trip_is_close():
    pixels = np.full((16, 16, 3), 120, np.uint8)
    decoded = decode_image(encode_image(pixels, "jpeg", 95), max_pixels=10_000)
    assert decoded.format == "JPEG" and np.abs(decoded.pixels.astype(int) - 120).max() <= 2


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_sixteen_bit_is_kept(fmt):
    pixels = (np.arange(8 * 8 * 3, dtype=np.uint16) * 683).reshape(8, 8, 3)
    data = encode_image(pixels, fmt)
    import cv2

    back = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert back.dtype == np.uint16 and np.array_equal(back, pixels)


def test_sixteen_bit_gray_decodes_to_sixteen_bit_rgb():
    gray = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    decoded = decode_image(_bytes(Image.fromarray(gray), "PNG"), 10_000)
    assert decoded.bit_depth == 16 and decoded.pixels.shape == (8, 8, 3)
    assert np.array_equal(decoded.pixels[..., 1], gray)


def test_exif_orientation_is_applied():
    image = Image.fromarray(_rgb(10, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    decoded = decode_image(_bytes(image, "JPEG", exif=exif), 10_000)
    assert decoded.pixels.shape[:2] == (30, 10)


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    decoded = decode_image(_bytes(image, "PNG", transparency=0), 100)
    assert (decoded.pixels == 255).all()


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", DecodeError, "empty"),
        (b"this is not an image at all", DecodeError, "not a recognised image"),
        (None, DecodeError, "cannot decode"),  # truncated PNG
        ("big", ImageTooLarge, "exceeds the limit"),
    ],
)
def test_bad_bytes_raise_clear_errors(data, error, message):
    if data is None:
        whole = encode_image(np.random.default_rng(0).integers(0, 255, (30, 30, 3), dtype=np.uint8), "png")
        data = whole[: len(whole) // 2]
    elif data == "big":
        data = encode_image(_rgb(40, 40), "png")
    with pytest.raises(error, match=message):
        decode_image(data, max_pixels=1000)


def test_output_format_follows_the_master_family_unless_configured():
    assert output_format("JPEG", "auto") == "jpeg"
    assert output_format("TIFF", "auto") == "tiff"
    assert output_format("GIF", "auto") == "png"
    assert output_format("JPEG", "png") == "png"
    with pytest.raises(ValueError, match="unknown output format"):
        output_format("JPEG", "bmp")


def test_a_damaged_exif_block_loses_the_exif_not_the_picture():
    """A real print of the test set (a DeOldify scan) carries an APP1 'Exif' segment that is not TIFF: the
    pixels decode, the EXIF is dropped and the read step notes why."""
    buffer = io.BytesIO()
    damaged_exif = b"Exif\x00\x00" + b"\xff\xff\xbeZ\x17#\xff\xff" + bytes(24)  # no TIFF header after Exif
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(buffer, "JPEG", dpi=(300, 300), exif=damaged_exif)
    damaged = buffer.getvalue()  # with a JFIF density, Pillow leaves the EXIF unread until asked
    decoded = decode_image(damaged, 1 << 20)
    assert decoded.pixels.shape == (8, 8, 3) and abs(int(decoded.pixels.mean()) - 120) <= 2
    assert decoded.metadata.exif == b"" and decoded.metadata.orientation == 1
    assert any("EXIF block unreadable" in note for note in decoded.metadata.notes)
