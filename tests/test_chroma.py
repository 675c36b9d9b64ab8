"""Colour that never hurts: chroma follows the print's lightness, and stays neutral where the colorizer guesses."""

import dataclasses

import numpy as np
import pytest

from patina.models import registry
from patina.models import synthetic as syn
from patina.models.chroma import (
    chroma_blotchiness,
    flip_confidence,
    gate_chroma,
    green_blue_share,
    guided_chroma,
)
from patina.models.image import lab_ab, luminance
from patina.models.stage import StageInput
from tests.helpers import scene


def _two_regions() -> tuple[np.ndarray, np.ndarray]:
    lightness = np.full((64, 64), 0.3, np.float32)
    lightness[:, 32:] = 0.7
    ab = np.zeros((64, 64, 2), np.float32)
    ab[:, :32] = (20.0, 30.0)  # brown on the dark half
    ab[:, 32:] = (-5.0, -20.0)  # blue on the light half
    return lightness, ab


def test_guided_chroma_evens_blotches_inside_a_region_and_keeps_its_edge():
    lightness, ab = _two_regions()
    blotchy = ab + np.random.default_rng(0).normal(0, 8, ab.shape).astype(np.float32)
    out = guided_chroma(lightness, blotchy, radius=6)
    assert chroma_blotchiness(lightness, out) < chroma_blotchiness(lightness, blotchy) / 3
    assert np.abs(out[:, 8:24] - ab[:, 8:24]).mean() < 2.0 and np.abs(out[:, 40:56] - ab[:, 40:56]).mean() < 2.0
    with pytest.raises(ValueError, match="must be"):
        guided_chroma(lightness[:10], ab, radius=4)


def test_flip_confidence_is_high_where_the_mirror_agrees_and_gates_where_it_does_not():
    _, ab = _two_regions()
    mirror = ab[:, ::-1].copy()  # what a consistent colorizer predicts for the mirror image
    mirror[:16] = 0.0  # ... but in the top rows it guessed differently
    confidence = flip_confidence(ab, mirror, sigma=6.0)
    assert confidence[32:].min() > 0.99 and confidence[:16].max() < 0.01
    gated = gate_chroma(ab, confidence, radius=2)
    assert np.abs(gated[:12]).max() < 0.5 and np.allclose(gated[40:], ab[40:], atol=1e-3)


def test_green_blue_share_counts_clear_greens_and_blues_only():
    ab = np.zeros((10, 10, 2), np.float32)
    ab[:2] = (-20.0, 5.0)  # green
    ab[2:4] = (0.0, -25.0)  # blue
    ab[4:6] = (15.0, 25.0)  # skin / sepia: not counted
    ab[6:8] = (-3.0, -3.0)  # too grey to count
    assert green_blue_share(ab) == pytest.approx(0.4)


def test_the_colorize_stage_is_no_blotchier_than_the_print_with_its_defaults():
    model = registry.DEFAULT_MODELS["colorize"]
    base = registry.default_params(model)
    gray = np.repeat(syn.grayscale(scene(96, 96, seed=3)).image[..., :1], 3, axis=2)
    decisions = {"assess": {"kind": "grayscale"}}
    raw = registry.build_stage(model, dataclasses.replace(base, confidence_sigma=0.0, coherence_radius=0))
    new = registry.build_stage(model, base)
    before = raw.process(StageInput(gray, decisions=decisions))
    after = new.process(StageInput(gray, decisions=decisions))
    assert "mean_confidence" in after.decisions and 0 < after.decisions["mean_confidence"] <= 1
    blotches = [chroma_blotchiness(luminance(x.image), lab_ab(x.image)) for x in (before, after)]
    assert blotches[1] < blotches[0], blotches
