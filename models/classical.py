"""Classical stages: strong non-learned methods that need no weights.

Each is a :class:`~patina.models.stage.Stage` over the pure functions in
:mod:`~patina.models.assessment`, :mod:`~patina.models.tone` and :mod:`~patina.models.specks`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from patina.models.assessment import assess_image
from patina.models.registry import registers
from patina.models.spec import ModelSpec
from patina.models.specks import detect_specks, inpaint_telea, speck_levels
from patina.models.stage import Stage, StageInput, StageOutput
from patina.models.tone import (
    apply_gains,
    apply_levels,
    contrast_levels,
    denoise_nlm,
    neutralize,
    nlm_strength,
    print_cast_gains,
)


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
    mono_residual: float = 3.0


@registers(
    classical(
        "classical/assess@1",
        "assess",
        "CIELAB chroma statistics, Immerkaer noise, Laplacian sharpness",
    )
)
class AssessStage(Stage):
    """Classify the print (grayscale / sepia / toned / colour) and estimate noise and blur."""

    stage = "assess"
    params_type = AssessParams
    changes_pixels = False  # on a large image it measures a proxy

    def process(self, item: StageInput) -> StageOutput:
        found = assess_image(item.image, self.params.gray_chroma, self.params.mono_residual)
        return StageOutput(image=item.image, decisions=dataclasses.asdict(found))


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
    denoise_strength: float = 1.0  # NLM h = strength x noise sigma (8-bit units)
    contrast: bool = True
    low_pct: float = 0.5
    high_pct: float = 99.5
    max_gain: float = 3.0
    min_gain: float = 1.3  # stretch only a compressed (faded) range: below this gain contrast is left alone
    cast_strength: float = 0.8
    cast_min_deviation: float = 0.1  # smaller casts (shades-of-grey and highlights agreeing) are left alone
    monochrome: Literal["neutral", "keep"] = "neutral"


@registers(
    classical(
        "classical/tone@2",
        "enhance",
        "non-local means denoising, shades-of-gray colour cast, toning removal, luma auto-contrast",
    )
)
class ToneStage(Stage):
    """Denoising (non-local means), colour-cast removal (colour prints) or toning removal
    (monochrome), then contrast."""

    stage = "enhance"
    params_type = ToneParams

    def tile_halo(self) -> int:
        return 16  # the NLM search window (21 px) and patch (7 px); the rest is pointwise once measured

    def analyze(self, item: StageInput) -> dict[str, Any]:
        """Route, cast gains and contrast levels of the whole image."""
        p = self.params
        kind = item.decisions.get("assess", {}).get("kind")
        if kind is None:  # assess did not run: judge here
            kind = assess_image(item.image).kind
        sigma = item.decisions.get("assess", {}).get("noise_sigma")
        if sigma is None:
            sigma = assess_image(item.image).noise_sigma
        found: dict[str, Any] = {"kind": kind, "route": "keep-toning", "gains": None, "levels": None, "nlm_h": None}
        if p.denoise == "on" or (p.denoise == "auto" and sigma > p.denoise_min_sigma):
            found["nlm_h"] = round(nlm_strength(sigma, p.denoise_strength), 3)
        image = item.image
        if kind == "color":
            gains = print_cast_gains(image, p.cast_strength, p.cast_min_deviation)
            found["route"] = "no-cast" if gains is None else "color-cast"
            if gains is not None:
                found["gains"] = gains.tolist()
                image = apply_gains(image, gains)
        elif p.monochrome == "neutral":
            found["route"] = "neutralize-toning"
            image = neutralize(image)
        if p.contrast:
            levels = contrast_levels(image, p.low_pct, p.high_pct, p.max_gain)
            found["levels"] = list(levels) if levels[0] >= p.min_gain else None
        return found

    def process(self, item: StageInput) -> StageOutput:
        found = item.analysis or self.analyze(item)
        image = item.image
        if found["nlm_h"] is not None:
            image = denoise_nlm(image, found["nlm_h"], monochrome=found["kind"] != "color")
        if found["gains"] is not None:
            image = apply_gains(image, found["gains"])
        elif found["route"] == "neutralize-toning":
            image = neutralize(image)
        if found["levels"] is not None:
            image = apply_levels(image, *found["levels"])
        decisions = {
            "kind": found["kind"],
            "route": found["route"],
            "denoise_h": found["nlm_h"],
            "contrast_gain": None if found["levels"] is None else round(found["levels"][0], 4),
        }
        return StageOutput(image=image, decisions=decisions)
