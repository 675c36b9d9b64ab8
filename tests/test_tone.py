"""The enhance stage does no harm: bounded clipping, colours kept where the kind is uncertain, changes flagged."""

import numpy as np
import pytest

from patina.models import registry
from patina.models import synthetic as syn
from patina.models.stage import StageInput
from patina.models.tone import bounded_strength, clipped_fractions, tone_change
from tests.helpers import scene, sepia_scene


def _tone(**params):
    return registry.build_stage("classical/tone@3", registry.as_params("classical/tone@3", params))


def _white_dress(h: int = 96, w: int = 96) -> np.ndarray:
    """A faded sepia print of a white dress: textured highlights near the top of the range."""
    rng = np.random.default_rng(5)
    image = np.full((h, w, 3), 0.45, np.float32)
    image[20:80, 25:70] = 0.86 + rng.normal(0, 0.02, (60, 45, 1))  # the dress, its folds just below white
    image[5:15, 5:90] = 0.25
    return syn.sepia(np.clip(image, 0, 1)).image


def test_contrast_never_clips_more_than_the_print_has():
    print_ = _white_dress()
    out = _tone(denoise="off").process(StageInput(print_, decisions={"assess": {"kind": "sepia", "noise_sigma": 0}}))
    before, after = clipped_fractions(print_), clipped_fractions(out.image)
    assert after[1] <= before[1] + 0.002 and after[0] <= before[0] + 0.002
    assert out.decisions["strength"] < 1.0  # the full stretch would have clipped the dress
    unbounded = _tone(denoise="off", max_new_clipped=1.0)
    full = unbounded.process(StageInput(print_, decisions={"assess": {"kind": "sepia", "noise_sigma": 0}}))
    assert clipped_fractions(full.image)[1] > before[1] + 0.01  # what the bound prevents
    dress = out.image[20:80, 25:70].mean(axis=2)
    assert dress.std() > 0.6 * print_[20:80, 25:70].mean(axis=2).std()  # the folds keep their texture


def test_single_hue_prints_keep_their_colours():
    """A print that might be a colour photograph of a one-colour subject is neither neutralised nor
    cast-corrected; its contrast may still be bounded-stretched."""
    print_ = syn.fade(sepia_scene(), 0.3).image
    out = _tone(denoise="off").process(
        StageInput(print_, decisions={"assess": {"kind": "single-hue", "noise_sigma": 0}})
    )
    assert out.decisions["route"] == "keep-colors"
    hue = lambda im: np.arctan2(*(im[..., c].mean() - im.mean() for c in (2, 0)))  # noqa: E731
    assert abs(hue(out.image) - hue(print_)) < 0.05
    neutral = _tone(denoise="off").process(
        StageInput(print_, decisions={"assess": {"kind": "sepia", "noise_sigma": 0}})
    )
    assert neutral.decisions["route"] == "neutralize-toning"
    assert np.ptp(neutral.image, axis=2).max() < 1e-5


def test_large_changes_are_measured_and_flagged():
    print_ = syn.fade(scene(), 0.6).image  # a washed-out colour print: the stretch is large
    stage = _tone(denoise="off", flag_tone_change=1.0)
    out = stage.process(StageInput(print_, decisions={"assess": {"kind": "color", "noise_sigma": 0}}))
    tone, colour = tone_change(print_, out.image)
    assert out.decisions["tone_change"] == pytest.approx(tone, abs=0.5)
    assert out.decisions["color_change"] == pytest.approx(colour, abs=0.5)
    assert out.decisions["flags"] and "dL*" in out.decisions["flags"][0]
    quiet = _tone(denoise="off").process(StageInput(scene(), decisions={"assess": {"kind": "color", "noise_sigma": 0}}))
    assert quiet.decisions["flags"] == []


def test_bounded_strength_is_the_largest_safe_fraction():
    image = np.linspace(0.2, 0.9, 1000, dtype=np.float32).reshape(10, 100, 1).repeat(3, axis=2)
    stretched = lambda t: np.clip(image * (1 + t), 0, 1)  # noqa: E731  # full: everything above 0.5 clips
    t = bounded_strength(image, stretched, 0.01)
    assert clipped_fractions(stretched(t))[1] <= 0.01 < clipped_fractions(stretched(min(1.0, t + 0.01)))[1]
    assert bounded_strength(image, lambda t: image, 0.0) == 1.0
