"""Metadata round trips: ICC, EXIF date, DPI, orientation, 16 bits and the XMP history."""

import io
import json

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from patina.models.codecs import apply_orientation, decode_image, encode_image
from patina.models.color_management import SRGB_ICC, profile_info
from patina.models.image_metadata import HistoryStep, OutputMetadata, xmp_packet
from patina.models.registry import DEFAULT_MODELS

ADOBE_RGB = imagecodecs.cms_profile("adobergb")
TAKEN = "1952:06:14 10:30:00"


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x0110] = "Speed Graphic"
    exif.get_ifd(0x8769)[0x9003] = TAKEN
    return exif


def _ramp(h=6, w=10, dtype=np.uint8):
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * top // (w - 1), y * top // (h - 1), (x + y) * top // (w + h - 2)], axis=2).astype(dtype)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation):
    pixels = _ramp(5, 7)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    image.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(apply_orientation(pixels, orientation), expected)


def test_adobe_rgb_sixteen_bit_tiff_is_converted_to_srgb_and_stays_sixteen_bit():
    pixels = np.zeros((4, 4, 3), np.uint16)
    pixels[..., 1] = 65535  # Adobe RGB's pure green lies outside sRGB
    pixels[1] = 30000
    sink = io.BytesIO()
    tifffile.imwrite(
        sink, pixels, photometric="rgb", iccprofile=ADOBE_RGB, resolution=(600, 600), resolutionunit="INCH"
    )
    decoded = decode_image(sink.getvalue(), 10_000)
    assert decoded.bit_depth == 16 and decoded.pixels.dtype == np.uint16
    assert decoded.metadata.icc_description == "Adobe RGB (compatible)"
    assert decoded.metadata.dpi == (600, 600)
    green = decoded.pixels[0, 0]
    assert green[1] == 65535 and green[0] == 0 and green[2] < 3000  # clipped into sRGB, not left as is
    gray = decoded.pixels[1, 0]
    assert abs(int(gray[0]) - 30183) <= 64 and gray[0] == gray[1] == gray[2]  # gamma 2.2 -> sRGB curve


def test_gray_icc_and_cmyk_jpeg_decode_to_rgb():
    gray = Image.fromarray(np.full((4, 4), 128, np.uint8), "L")
    sink = io.BytesIO()
    gray.save(sink, "PNG", icc_profile=imagecodecs.cms_profile("gray", gamma=1.0))
    decoded = decode_image(sink.getvalue(), 100)
    assert decoded.pixels.shape == (4, 4, 3) and decoded.pixels[0, 0, 0] > 180  # linear 0.5 is bright in sRGB
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # process red
    sink = io.BytesIO()
    cmyk.save(sink, "JPEG", quality=100)
    red = decode_image(sink.getvalue(), 100).pixels[2, 2]
    assert red[0] > 230 and red[1] < 30 and red[2] < 30


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff", "ptif", "webp"])
def test_output_carries_srgb_profile_dpi_exif_and_xmp_history(fmt):
    steps = [
        HistoryStep("detect_damage", "classical/dust-scratch-detector@1", None, '{"kernel":11}', "ok"),
        HistoryStep("enhance", "esrgan/x4plus@1", "ab" * 32, "{}", "ok"),
    ]
    xmp = xmp_packet("patina 9.9", "run-7", "box/3", "cd" * 32, steps, TAKEN)
    meta = OutputMetadata(_exif(1).tobytes(), (300.0, 300.0), xmp)
    data = encode_image(_ramp(8, 12, np.uint16), fmt, 95, meta)
    image = Image.open(io.BytesIO(data))
    assert profile_info(image.info["icc_profile"])[0] == profile_info(SRGB_ICC)[0]
    if fmt != "webp":  # WebP has no resolution field
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    packet = image.info.get("xmp") or image.getexif().get(700) or image.tag_v2.get(700)
    text = packet.decode() if isinstance(packet, bytes) else packet
    for needed in ("xmpMM:History", "esrgan/x4plus@1", "ab" * 32, "run-7", "box/3", "1952-06-14T10:30:00"):
        assert needed in text
    if fmt not in ("tiff", "ptif"):  # TIFF keeps the date in XMP (see README)
        assert image.getexif().get_ifd(0x8769)[0x9003] == TAKEN
    again = decode_image(data, 10_000)
    assert again.bit_depth == (16 if fmt in ("png", "tiff", "ptif") else 8)


def test_sixteen_bit_png_round_trips_exactly():
    pixels = _ramp(9, 11, np.uint16)
    pixels[0, 0] = (1, 2, 3)  # below 8-bit resolution
    again = decode_image(encode_image(pixels, "png"), 10_000)
    assert again.bit_depth == 16 and np.array_equal(again.pixels, pixels)


def test_exif_rotated_jpeg_is_upright_and_keeps_its_date():
    sink = io.BytesIO()
    Image.fromarray(_ramp(10, 30)).save(sink, "JPEG", exif=_exif(6))
    decoded = decode_image(sink.getvalue(), 10_000)
    assert decoded.pixels.shape[:2] == (30, 10)
    assert decoded.metadata.orientation == 6 and decoded.metadata.date_taken == TAKEN
    kept = Image.Exif()
    kept.load(decoded.metadata.exif)
    assert kept[0x0112] == 1 and kept[0x0110] == "Speed Graphic"


def test_pipeline_output_keeps_metadata(ray_local, tmp_path):
    from patina.actors.pipeline import run_pipeline
    from patina.flows.config import PipelineConfig
    from patina.manifests.provenance import read_provenance
    from patina.manifests.readers import read_manifest

    masters = tmp_path / "masters"
    masters.mkdir()
    rng = np.random.default_rng(3)
    scan = (rng.integers(20000, 40000, (24, 32, 3))).astype(np.uint16)
    tifffile.imwrite(masters / "a.tif", scan, photometric="rgb", iccprofile=ADOBE_RGB, resolution=(1200, 1200))
    Image.fromarray(_ramp(20, 28)).save(masters / "b.jpg", "JPEG", exif=_exif(8), dpi=(400, 400))
    (masters / "m.csv").write_text("item_id,source_uri\nA,a.tif\nB,b.jpg\n")
    out = tmp_path / "out"
    summary = run_pipeline(read_manifest(str(masters / "m.csv")), PipelineConfig().run_settings("run-m", str(out)))
    assert summary.status == "completed"
    tif = Image.open(out / "A.tif")
    assert tif.tag_v2[258] == (16, 16, 16) and tif.info["dpi"] == pytest.approx((1200, 1200))
    assert profile_info(tif.info["icc_profile"])[0] == "sRGB built-in"
    xmp = tif.tag_v2[700]
    assert "classical/tone@3" in (xmp.decode() if isinstance(xmp, bytes) else xmp)
    jpg = Image.open(out / "B.jpg")
    assert jpg.size == (20, 28) and jpg.getexif()[0x0112] == 1 and jpg.info["dpi"] == pytest.approx((400, 400))
    assert "run-m" in jpg.info["xmp"].decode() and DEFAULT_MODELS["detect_damage"] in jpg.info["xmp"].decode()
    reads = {
        r["item_id"]: json.loads(r["decisions"]) for r in read_provenance(str(out)).to_pylist() if r["stage"] == "read"
    }
    assert reads["A"]["icc_profile"] == "Adobe RGB (compatible)" and reads["A"]["bit_depth"] == 16
    assert reads["B"]["orientation"] == 8 and reads["B"]["date_taken"] == TAKEN
