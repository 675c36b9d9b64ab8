"""Faded colour prints: density curves that invert dye fading, the network that estimates them, its training."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from patina.models import registry
from patina.models import synthetic as syn
from patina.models.fade_network import FadeNet, estimate_fade, load_fade_net, train_fade
from patina.models.fading import FEATURES, FadeEstimate, fade_features
from patina.models.stage import StageInput
from patina.models.tone import HIGHLIGHT_END, from_density, soft_ends, to_density, tone_change
from tests.helpers import scene


def test_density_round_trip_and_curves_invert_a_dye_fade():
    clean = scene(48, 56)
    np.testing.assert_allclose(from_density(to_density(clean)), np.clip(clean, 10**-3 * 12.92, 1), atol=2e-3)
    dyes, stain = (0.55, 0.9, 0.8), (0.01, 0.02, 0.12)
    faded = syn.dye_fade(clean, dyes, stain).image
    assert tone_change(clean, faded)[1] > 5  # a visible fade
    exact = FadeEstimate(tuple(1 / k for k in dyes), tuple(-s / k for s, k in zip(stain, dyes, strict=True)), 0.0)
    assert tone_change(clean, exact.apply(faded))[1] < 0.5
    np.testing.assert_allclose(exact.apply(faded, strength=0.0), faded, atol=1e-5)


def test_a_fresh_network_predicts_the_identity():
    net = FadeNet().eval()
    estimate = estimate_fade(net, scene(40, 40))
    assert estimate.scale == pytest.approx((1, 1, 1)) and estimate.offset == pytest.approx((0, 0, 0))
    assert estimate.effect == pytest.approx(0, abs=0.05)
    assert fade_features(scene(40, 40)).shape == (FEATURES,)


def test_training_writes_loadable_weights_and_a_card(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(12):
        Image.fromarray((scene(48, 64, seed=seed) * 255).astype(np.uint8)).save(data / f"s{seed}.png")
    card = train_fade(data, tmp_path / "out", val=data, epochs=3, repeats=2)
    weights = tmp_path / "out" / "model.safetensors"
    assert card["parameters"] == sum(p.numel() for p in FadeNet().parameters())
    assert json.loads((tmp_path / "out" / "model-card.json").read_text())["sha256"] == card["sha256"]
    assert set(card["metrics"]["dE2000"]) == {"faded", "faded_corrected", "clean_corrected"}
    net = load_fade_net(weights)
    assert not torch.equal(net.mean, torch.zeros(FEATURES))  # the training set's normalisation is kept


def test_assess_says_faded_colour_only_when_asked_to_look_and_enhance_applies_the_curves():
    """With the shipped curves: a strongly faded colour print is 'faded-color' in a collection known to
    hold faded colour prints, and enhance brings it nearer the photograph without clipping; in an
    'auto' collection it is only flagged for a look, and enhance leaves its dyes alone."""
    clean = syn.blur(np.kron(scene(24, 32, seed=4), np.ones((4, 4, 1), np.float32)), 1.0).image
    faded = syn.dye_fade(clean, (0.5, 0.92, 0.8), (0.0, 0.02, 0.15)).image
    judge = {
        collection: registry.build_stage(
            "classical/assess@2", registry.as_params("classical/assess@2", {"collection": collection})
        )
        .process(StageInput(faded))
        .decisions
        for collection in ("faded-color", "auto")
    }
    known, auto = judge["faded-color"], judge["auto"]
    assert known["kind"] == "faded-color" and known["fade"]["effect"] >= known["fade"]["threshold"]
    assert auto["kind"] == "color" and "looks faded" in auto["flags"][0] and "faded-color" in auto["flags"][0]
    enhance = registry.build_stage("classical/tone@3", registry.as_params("classical/tone@3", {"denoise": "off"}))
    out = enhance.process(StageInput(faded, decisions={"assess": known}))
    assert out.decisions["route"] == "fade-curves" and out.decisions["fade_curves"]["scale"] == known["fade"]["scale"]
    assert out.decisions["strength"] == 1.0 and out.decisions["clipped_after"] == [0.0, 0.0]  # rolled off, not clipped
    assert tone_change(clean, out.image)[1] < 0.6 * tone_change(clean, faded)[1]
    left = enhance.process(StageInput(faded, decisions={"assess": auto})).decisions
    assert left["route"] in {"color-cast", "no-cast"} and "fade_curves" not in left


def test_soft_ends_keep_texture_where_clipping_would_lose_it():
    ramp = np.linspace(0.8, 1.3, 64, dtype=np.float32)  # a stretch that pushes whites past 1
    rolled = soft_ends(np.broadcast_to(ramp[None, :, None], (2, 64, 3)).copy(), allow_range=True)[0, :, 0]
    assert np.all(np.diff(rolled) > 0)  # every step of the ramp still distinct: texture kept
    assert rolled.max() < HIGHLIGHT_END and rolled.min() == pytest.approx(0.8, abs=1e-6)  # untouched below the knee
