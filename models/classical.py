"""Classical stages: strong non-learned methods that need no weights.

Each is a :class:`~patina.models.stage.Stage` over the pure functions in
:mod:`~patina.models.assessment`, :mod:`~patina.models.tone` and :mod:`~patina.models.specks`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from patina.models.assessment import COLOR_KINDS, MONOCHROME_KINDS, assess_image
from patina.models.fading import FADE_CURVES, FadeEstimate
from patina.models.registry import registers
from patina.models.spec import ModelSpec
from patina.models.specks import detect_specks, inpaint_telea, speck_levels
from patina.models.stage import Stage, StageInput, StageOutput
from patina.models.tone import (
    apply_gains,
    apply_levels,
    apply_luma_levels,
    bounded_strength,
    clipped_fractions,
    contrast_levels,
    denoise_nlm,
    neutralize,
    nlm_strength,
    pixel_sample,
    print_cast_gains,
    tone_change,
)
from patina.models.weights import weights_path


def classical(model_id: str, stage: str, description: str) -> ModelSpec:
    """The spec of a classical operation: no weights, Apache-2.0 (patina's own code)."""
    return ModelSpec(
        id=model_id,
        stage=stage,
        architecture="classical",
        license="Apache-2.0",
        description=description,
        memory_mb=150,  # 128 measured for each (benchmarks/actor_memory.py): mostly the image's own arrays
    )


@dataclass(frozen=True)
class AssessParams:
    gray_chroma: float = 4.0
    color_spread_min: float = 2.0  # see assess_image: no toned print of benchmarks/assess.py reaches it
    # What the collection holds (assess_image): "faded-color" also calls single-hue prints colour and
    # judges fading at the lower fade_min_known.
    collection: Literal["auto", "monochrome", "color", "faded-color"] = "auto"
    # A colour print looks faded when the density curves patina/fade-curves@1 estimates would change it
    # by this mean dE*ab. With collection "auto" it is only flagged for a look (1.7% of unfaded corpus
    # photographs reach 12: benchmarks/assess.py); "faded-color" calls it faded, and enhance corrects it,
    # from fade_min_known.
    fade_min: float = 12.0
    fade_min_known: float = 3.0


@registers(
    classical(
        "classical/assess@2",
        "assess",
        "CIELAB chroma and its spread across one tone curve's hue, Immerkaer noise, Laplacian sharpness",
    )
)
class AssessStage(Stage):
    """Classify the print (grayscale / sepia / toned / single-hue / colour) and estimate noise and blur."""

    stage = "assess"
    params_type = AssessParams
    changes_pixels = False  # on a large image it measures a proxy

    @classmethod
    def auxiliary_weights(cls) -> tuple[ModelSpec, ...]:
        return (FADE_CURVES,)

    def process(self, item: StageInput) -> StageOutput:
        p = self.params
        known_faded = p.collection == "faded-color"
        found = assess_image(item.image, p.gray_chroma, p.color_spread_min, "color" if known_faded else p.collection)
        decisions = dataclasses.asdict(found)
        if found.kind == "color":
            from patina.models.fade_network import estimate_fade  # torch: only where a colour print is judged

            fade = estimate_fade(self._fade_net(), item.image)
            threshold = p.fade_min_known if known_faded else p.fade_min
            decisions["fade"] = {**dataclasses.asdict(fade), "threshold": threshold}
            if fade.effect >= threshold and known_faded:
                decisions["kind"] = "faded-color"
                decisions["reason"] += f"; faded: the fade curves would change it by mean dE {fade.effect:.1f}"
            elif fade.effect >= threshold:
                decisions["flags"] = [
                    f"looks faded (the fade curves would change it by mean dE {fade.effect:.1f}, >= {threshold}): "
                    'left as it is; [stage.assess] params = { collection = "faded-color" } corrects it'
                ]
        return StageOutput(image=item.image, decisions=decisions)

    def _fade_net(self):
        if getattr(self, "_net", None) is None:
            from patina.models.fade_network import load_fade_net

            self._net = load_fade_net(weights_path(FADE_CURVES))
        return self._net


@dataclass(frozen=True)
class SpeckParams:
    kernel: int = 11
    threshold_sigma: float = 11.0
    min_contrast: float = 0.4  # with threshold_sigma: the best precision/recall trade-off in benchmarks/quality.py
    max_area: int = 120
    dilate: int = 1
    line_min_length: int = 40  # thin components at least this long are scratches (0: dust only)
    line_max_width: float = 4.5  # mean width (area / length) of a scratch, px
    texture_ratio: float = 3.0  # a defect's top-hat must exceed this x the local mean gradient (0: off)
    texture_window: int = 31


@registers(
    classical(
        "classical/dust-scratch-detector@1",
        "detect_damage",
        "top-hat dust, speck and thin-scratch detector",
    )
)
class SpeckDetectStage(Stage):
    """Damage mask of dust, specks and thin scratches (morphological top-hats, component shape)."""

    stage = "detect_damage"
    params_type = SpeckParams
    analysis_sample = "crop"  # the top-hat statistics need full resolution

    def tile_halo(self) -> int:
        p = self.params
        reach = max(p.max_area, p.line_min_length, p.texture_window)
        return p.kernel + reach + p.dilate  # a whole speck and its texture window fit in the halo

    def analyze(self, item: StageInput) -> dict[str, Any]:
        p = self.params
        return {"levels": list(speck_levels(item.image, p.kernel, p.threshold_sigma, p.min_contrast))}

    def process(self, item: StageInput) -> StageOutput:
        levels = item.analysis.get("levels")
        mask = detect_specks(
            item.image, **dataclasses.asdict(self.params), levels=tuple(levels) if levels is not None else None
        )
        fraction = float(mask.mean())
        return StageOutput(image=item.image, mask=mask, decisions={"damaged_fraction": round(fraction, 6)})


def nothing_to_fill(item: StageInput) -> StageOutput | None:
    """The ``skipped`` output of an inpainting stage given no mask or an empty one, else None."""
    if item.mask is not None and item.mask.any():
        return None
    reason = "no damage mask" if item.mask is None else "mask is empty"
    return StageOutput(image=item.image, decisions={"reason": reason}, applied=False)


@dataclass(frozen=True)
class TeleaParams:
    radius: int = 3


@registers(
    classical(
        "classical/telea-inpaint@1",
        "inpaint",
        "OpenCV Telea fast-marching inpainting",
    )
)
class TeleaInpaintStage(Stage):
    """Fill masked damage from its surroundings (Telea fast marching)."""

    stage = "inpaint"
    params_type = TeleaParams
    uses_mask = True

    def tile_halo(self) -> int:
        return 4 * self.params.radius + 16  # holes (specks) are small; the fill reads radius px around them

    def process(self, item: StageInput) -> StageOutput:
        if (skipped := nothing_to_fill(item)) is not None:
            return skipped
        filled = inpaint_telea(item.image, item.mask, self.params.radius)
        return StageOutput(image=filled, decisions={"filled_pixels": int(item.mask.sum())})


@dataclass(frozen=True)
class ToneParams:
    denoise: Literal["auto", "on", "off"] = "auto"  # auto: when assess's noise estimate exceeds denoise_min_sigma
    denoise_min_sigma: float = 0.018  # ~4.6/255: below it, NLM removes more texture than noise (quality benchmark)
    # NLM h = strength x noise sigma (8-bit units). 0.6, not 1: at 1 (and 0.8) NLM flattens texture as faint
    # as the grain (the sample collection's painted mural); benchmarks/denoise.py: same detail kept as 1 on
    # synthetic grain, at 2-4 dB less PSNR gain against the clean photograph
    denoise_strength: float = 0.6
    contrast: bool = True
    low_pct: float = 0.5
    high_pct: float = 99.5
    max_gain: float = 3.0
    min_gain: float = 1.3  # stretch only a compressed (faded) range: below this gain contrast is left alone
    cast_strength: float = 0.8
    cast_min_deviation: float = 0.1  # smaller casts (shades-of-grey and highlights agreeing) are left alone
    monochrome: Literal["neutral", "keep"] = "neutral"
    # Do no harm: the colour and contrast corrections are scaled back until they leave at most this
    # fraction more pixels at either end (darkest channel <= 5/255, brightest >= 250/255) than the input.
    max_new_clipped: float = 0.002
    # Fade curves roll the values they push past black or white off into the ends (tone.soft_ends)
    # instead of clipping them: the dyes' range comes back without losing texture in whites.
    soft_ends: bool = True
    flag_tone_change: float = 8.0  # mean |dL*| above which the item is flagged for a look
    flag_color_change: float = 10.0  # mean dE*ab (CIE 1976) above which the item is flagged


@registers(
    classical(
        "classical/tone@3",
        "enhance",
        "non-local means denoising, shades-of-gray colour cast, toning removal, luma auto-contrast, "
        "bounded by the print's own clipping",
    )
)
class ToneStage(Stage):
    """Denoising (non-local means), colour-cast removal (colour prints) or toning removal
    (monochrome), then contrast; single-hue prints keep their colours. The corrections never clip
    more than ``max_new_clipped`` of the pixels beyond what the print has, and large changes are flagged."""

    stage = "enhance"
    params_type = ToneParams

    def tile_halo(self) -> int:
        return 16  # the NLM search window (21 px) and patch (7 px); the rest is pointwise once measured

    def analyze(self, item: StageInput) -> dict[str, Any]:
        """Route, cast gains, contrast levels and their bounded strength, measured on a sample of the image."""
        p = self.params
        assessed = item.decisions.get("assess", {})
        kind, sigma = assessed.get("kind"), assessed.get("noise_sigma")
        if kind is None or sigma is None:  # assess did not run: judge here
            found_here = assess_image(item.image)
            kind, sigma = kind or found_here.kind, found_here.noise_sigma if sigma is None else sigma
        found: dict[str, Any] = {"kind": kind, "gains": None, "levels": None, "nlm_h": None, "strength": 1.0}
        if p.denoise == "on" or (p.denoise == "auto" and sigma > p.denoise_min_sigma):
            found["nlm_h"] = round(nlm_strength(sigma, p.denoise_strength), 3)
        sample = pixel_sample(item.image)
        found["fade"] = assessed.get("fade") if kind == "faded-color" else None
        found["soft_ends"] = p.soft_ends
        if found["fade"] is not None:
            found["route"] = "fade-curves"
        elif kind == "color":
            gains = print_cast_gains(sample, p.cast_strength, p.cast_min_deviation)
            found["route"] = "no-cast" if gains is None else "color-cast"
            found["gains"] = None if gains is None else gains.tolist()
        elif kind in MONOCHROME_KINDS:
            found["route"] = "neutralize-toning" if p.monochrome == "neutral" else "keep-toning"
        else:
            found["route"] = "keep-colors"  # single-hue: maybe a colour photograph of a one-colour subject
        if (
            p.contrast and found["fade"] is None
        ):  # the fade curves set the range themselves (a stretch after them: worse)
            levels = contrast_levels(_corrected(sample, {**found, "levels": None}), p.low_pct, p.high_pct, p.max_gain)
            found["levels"] = list(levels) if levels[0] >= p.min_gain else None
        if found["gains"] is not None or found["levels"] is not None or found["fade"] is not None:
            at = lambda t: _corrected(sample, {**found, "strength": t})  # noqa: E731
            strength = bounded_strength(sample, at, p.max_new_clipped)
            found["strength"] = math.floor(strength * 1e4) / 1e4  # rounded down: never past the bound
        after = _corrected(sample, found)
        found["clipped_before"] = [round(f, 5) for f in clipped_fractions(sample)]
        found["clipped_after"] = [round(f, 5) for f in clipped_fractions(after)]
        tone, colour = tone_change(sample, after)
        found["tone_change"], found["color_change"] = round(tone, 3), round(colour, 3)
        flags = []
        if tone > p.flag_tone_change:
            flags.append(f"tone changed by mean dL* {tone:.1f} (bound {p.flag_tone_change})")
        if colour > p.flag_color_change:
            flags.append(f"colour changed by mean dE {colour:.1f} (bound {p.flag_color_change})")
        found["flags"] = flags
        return found

    def process(self, item: StageInput) -> StageOutput:
        found = item.analysis or self.analyze(item)
        image = item.image
        if found["nlm_h"] is not None:
            image = denoise_nlm(image, found["nlm_h"], monochrome=found["kind"] not in COLOR_KINDS)
        image = _corrected(image, found)
        decisions = {
            "kind": found["kind"],
            "route": found["route"],
            "denoise_h": found["nlm_h"],
            "contrast_gain": None if found["levels"] is None else round(found["levels"][0], 4),
            **{key: found[key] for key in ("strength", "clipped_before", "clipped_after", "tone_change")},
            **({"fade_curves": found["fade"]} if found["fade"] is not None else {}),
            "color_change": found["color_change"],
            "flags": found["flags"],
        }
        return StageOutput(image=image, decisions=decisions)


def _corrected(image: np.ndarray, found: dict[str, Any]) -> np.ndarray:
    """The colour and tone corrections of :meth:`ToneStage.analyze` at their ``strength`` (pointwise)."""
    t = found["strength"]
    if found["route"] == "neutralize-toning":
        image = neutralize(image)
    if found.get("fade") is not None:
        fade = found["fade"]
        image = FadeEstimate(fade["scale"], fade["offset"], fade["effect"]).apply(image, t, found["soft_ends"])
    if found["gains"] is not None:
        image = apply_gains(image, 1.0 + t * (np.asarray(found["gains"], np.float32) - 1.0))
    if found["levels"] is not None:
        gain, offset = found["levels"]
        levels = apply_levels if found["kind"] in COLOR_KINDS else apply_luma_levels  # toning keeps its strength
        image = levels(image, 1.0 + t * (gain - 1.0), t * offset)
    return image
