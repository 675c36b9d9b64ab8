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


@pytest.mark.parametrize(("dtype", "compression", "stored"), [
    (np.uint8, "jpeg", 7),  # TIFF compression 7: JPEG
    (np.uint8, "deflate", 8),  # 8: Adobe deflate
    (np.uint16, "jpeg", 8),  # JPEG cannot hold 16 bits: deflate
])  # fmt: skip
def test_pyramidal_tiff_levels_read_back_tiled_and_halving(dtype, compression, stored):
    import io

    import tifffile

    from patina.models.codecs import PTIF_TILE

    top = np.iinfo(dtype).max
    rng = np.random.default_rng(1)
    pixels = np.clip(rng.normal(0.5, 0.1, (1100, 700, 1)) + np.linspace(0, 0.3, 700)[None, :, None], 0, 1) * top
    pixels = np.repeat(pixels, 3, axis=2).astype(dtype)
    data = encode_image(pixels, "ptif", 90, tile_compression=compression)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert len(tif.pages) == 1  # one image; its reductions are SubIFDs, not pages
        levels = tif.series[0].levels
        assert [level.shape[:2] for level in levels] == [(1100, 700), (550, 350), (275, 175), (137, 87)]
        for level in levels:
            page = level.keyframe
            assert page.is_tiled and (page.tilewidth, page.tilelength) == (PTIF_TILE, PTIF_TILE)
            assert page.compression == stored and page.dtype == dtype
        assert levels[1].keyframe.subfiletype == 1  # reduced-resolution
        full, half = levels[0].asarray(), levels[1].asarray()
    tolerance = 0.03 * top if stored == 7 else 0
    assert np.abs(full.astype(np.float64) - pixels).mean() <= tolerance
    assert abs(half.astype(np.float64).mean() - pixels.mean()) < 0.01 * top  # an average, not a crop
    decoded = decode_image(data, max_pixels=10**7)
    assert decoded.pixels.shape == (1100, 700, 3) and decoded.metadata.notes == ()  # read as one image
    with pytest.raises(ValueError, match="unknown tile compression 'lzw'"):
        encode_image(pixels, "ptif", tile_compression="lzw")
