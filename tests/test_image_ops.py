import numpy as np
import pytest

from patina.models import synthetic as syn
from patina.models.assessment import assess_image, estimate_noise_sigma
from patina.models.image import check_image, luminance, pixels_to_transport, to_transport, to_working
from patina.models.specks import detect_specks, inpaint_telea
from patina.models.tone import auto_contrast, illuminant_estimate, remove_color_cast
from tests.helpers import gradient, scene, sepia_scene


def _stained_sepia() -> np.ndarray:
    """A sepia print with a yellow stain: its colours vary along its one hue only."""
    return syn.stains(sepia_scene(), np.random.default_rng(3), count=3, strength=0.3).image


@pytest.mark.parametrize(
    ("make", "auto", "monochrome"),
    [
        (lambda: scene(), "color", "color"),
        (lambda: syn.grayscale(scene()).image, "grayscale", "grayscale"),
        (lambda: sepia_scene(), "single-hue", "sepia"),
        (_stained_sepia, "single-hue", "sepia"),
        (lambda: syn.color_cast(syn.grayscale(scene()).image, (0.8, 0.95, 1.15)).image, "single-hue", "toned"),
        (lambda: syn.color_cast(scene(), (1.06, 1.0, 0.72)).image, "color", "color"),  # yellowed colour stays colour
        (lambda: syn.dye_fade(scene()).image, "color", "color"),  # so does a faded colour print
    ],
)
def test_assess_kinds(make, auto, monochrome):
    """A print of one hue is toned only where the collection is known to be monochrome; a print whose
    colours vary in two directions is colour whatever the collection."""
    image = make()
    found = assess_image(image)
    assert found.kind == auto, found.reason
    assert assess_image(image, collection="monochrome").kind == monochrome
    assert assess_image(image, collection="color").kind == ("grayscale" if auto == "grayscale" else "color")
    assert f"{found.color_spread:.2f}" in found.reason or found.kind == "grayscale"


def test_assess_refuses_an_unknown_collection():
    with pytest.raises(ValueError, match="collection must be one of"):
        assess_image(scene(), collection="sepia")


def test_noise_estimate_tracks_added_grain():
    rng = np.random.default_rng(1)
    clean = luminance(gradient(128, 128))
    assert estimate_noise_sigma(clean) < 0.002
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    assert estimate_noise_sigma(noisy) == pytest.approx(0.05, rel=0.15)


def test_auto_contrast_stretches_a_faded_print():
    faded = syn.fade(syn.grayscale(scene()).image, 0.5).image
    out = auto_contrast(faded, 0.5, 99.5, max_gain=10)
    lo, hi = np.percentile(luminance(out), [0.5, 99.5])
    assert lo < 0.05 and hi > 0.95


def test_auto_contrast_applies_one_gain_to_all_channels():
    faded = syn.fade(scene(), 0.3).image
    out = auto_contrast(faded, 0.5, 99.5, max_gain=10)
    inside = (out > 0.001).all(axis=2) & (out < 0.999).all(axis=2)
    # Same gain on every channel: channel differences scale by one common factor (hue kept).
    ratio = (out[..., 0] - out[..., 1])[inside] / np.where(
        np.abs(faded[..., 0] - faded[..., 1]) > 0.02, faded[..., 0] - faded[..., 1], np.nan
    )[inside]
    ratio = ratio[np.isfinite(ratio)]
    assert ratio.size >= 10 and np.ptp(ratio) < 0.05 * np.median(ratio)


def test_auto_contrast_caps_gain_on_flat_images():
    flat = np.full((16, 16, 3), 0.5, dtype=np.float32)
    flat[0, 0] = 0.52
    out = auto_contrast(flat, 0, 100, max_gain=2)
    assert float(out.max() - out.min()) <= 2 * 0.02 + 1e-5


def test_remove_color_cast_neutralises_a_yellowed_gray_scene():
    gray = syn.grayscale(scene()).image
    cast = syn.color_cast(gray, (1.1, 1.0, 0.75)).image
    assert np.ptp(illuminant_estimate(cast)) > 0.2
    fixed = remove_color_cast(cast, strength=1.0)
    assert np.ptp(illuminant_estimate(fixed)) < 0.02
    assert abs(luminance(fixed).mean() - luminance(cast).mean()) < 0.01


def test_speck_detector_finds_dust_and_leaves_clean_images_alone():
    rng = np.random.default_rng(3)
    clean = syn.grayscale(gradient(96, 96)).image
    assert not detect_specks(clean).any()
    damaged = syn.dust(clean, 12, rng, radius=(1, 2))
    found = detect_specks(damaged.image, dilate=0)
    recall = (found & damaged.mask).sum() / damaged.mask.sum()
    precision = (found & damaged.mask).sum() / max(found.sum(), 1)
    assert recall > 0.9 and precision > 0.8


def test_telea_fill_brings_damaged_pixels_back_towards_clean():
    rng = np.random.default_rng(4)
    clean = gradient(64, 64)
    damaged = syn.dust(clean, 10, rng)
    filled = inpaint_telea(damaged.image, damaged.mask)
    m = damaged.mask
    assert np.abs(filled[m] - clean[m]).mean() < 0.25 * np.abs(damaged.image[m] - clean[m]).mean()
    assert np.array_equal(filled[~m], damaged.image[~m])  # untouched outside the mask


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((4, 4), np.float32), "shape"),
        (np.zeros((4, 4, 3), np.uint8), "float32"),
        (np.zeros((0, 4, 3), np.float32), "empty"),
        ([[0.0]], "numpy array"),
    ],
)
def test_check_image_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        check_image(bad)


def test_transport_round_trip_is_exact_for_8_and_16_bit():
    eight = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    assert np.array_equal(to_transport(to_working(pixels_to_transport(eight))), pixels_to_transport(eight))
    sixteen = (np.arange(48, dtype=np.uint16) * 1365).reshape(4, 4, 3)
    assert np.array_equal(to_transport(to_working(sixteen)), sixteen)


@pytest.mark.parametrize("damage", ["scratches", "dust", "crease"])
def test_synthetic_damage_mask_is_exactly_what_was_drawn(damage):
    rng = np.random.default_rng(5)
    clean = np.full((80, 60, 3), 0.5, dtype=np.float32)
    fn = {
        "scratches": lambda im: syn.scratches(im, 3, rng),
        "dust": lambda im: syn.dust(im, 8, rng),
        "crease": lambda im: syn.crease(im, rng),
    }[damage]
    out = fn(clean)
    assert out.mask.any()
    changed = np.abs(out.image - clean).max(axis=2) > 0.05
    assert np.array_equal(changed & out.mask, out.mask)  # every masked pixel was damaged
    if damage != "crease":  # a crease also shades a band beside the break, which stays legible
        assert not (changed & ~out.mask).any()


def test_transport_to_eight_bits_rounds_every_value_exactly():
    from patina.models.image import transport_to_pixels

    values = np.arange(65536, dtype=np.uint16).reshape(256, 256, 1).repeat(3, axis=2)
    expected = np.floor(values.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    assert np.array_equal(transport_to_pixels(values, 8), expected)
