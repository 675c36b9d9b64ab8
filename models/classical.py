"""Classical stages: strong non-learned methods that need no weights.

Each is a :class:`~patina.models.stage.Stage` over the pure functions in
:mod:`~patina.models.assessment`, :mod:`~patina.models.tone` and :mod:`~patina.models.specks`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from patina.models.assessment import assess_image
from patina.models.specks import detect_specks, inpaint_telea
from patina.models.stage import Stage, StageInput, StageOutput
from patina.models.tone import auto_contrast, neutralize, remove_color_cast


@dataclass(frozen=True)
class AssessParams:
    gray_chroma: float = 4.0
    mono_residual: float = 3.0


class AssessStage(Stage):
    """Classify the print (grayscale / sepia / toned / colour) and estimate noise and blur."""

    stage = "assess"
    params_type = AssessParams

    def process(self, item: StageInput) -> StageOutput:
        found = assess_image(item.image, self.params.gray_chroma, self.params.mono_residual)
        return StageOutput(image=item.image, decisions=dataclasses.asdict(found))


@dataclass(frozen=True)
class SpeckParams:
    kernel: int = 11
    threshold_sigma: float = 8.0
    min_contrast: float = 0.3
    max_area: int = 120
    dilate: int = 1


class SpeckDetectStage(Stage):
    """Damage mask of dust, specks and short fine scratches (morphological top-hats)."""

    stage = "detect_damage"
    params_type = SpeckParams

    def process(self, item: StageInput) -> StageOutput:
        mask = detect_specks(item.image, **dataclasses.asdict(self.params))
        fraction = float(mask.mean())
        return StageOutput(image=item.image, mask=mask, decisions={"damaged_fraction": round(fraction, 6)})


@dataclass(frozen=True)
class TeleaParams:
    radius: int = 3


class TeleaInpaintStage(Stage):
    """Fill masked damage from its surroundings (Telea fast marching)."""

    stage = "inpaint"
    params_type = TeleaParams

    def process(self, item: StageInput) -> StageOutput:
        if item.mask is None or not item.mask.any():
            reason = "no damage mask" if item.mask is None else "mask is empty"
            return StageOutput(image=item.image, decisions={"reason": reason}, applied=False)
        filled = inpaint_telea(item.image, item.mask, self.params.radius)
        return StageOutput(image=filled, decisions={"filled_pixels": int(item.mask.sum())})


@dataclass(frozen=True)
class ToneParams:
    contrast: bool = True
    low_pct: float = 0.5
    high_pct: float = 99.5
    max_gain: float = 3.0
    cast_strength: float = 0.8
    monochrome: Literal["neutral", "keep"] = "neutral"


class ToneStage(Stage):
    """Colour-cast removal (colour prints) or toning removal (monochrome), then contrast."""

    stage = "enhance"
    params_type = ToneParams

    def process(self, item: StageInput) -> StageOutput:
        p = self.params
        kind = item.decisions.get("assess", {}).get("kind")
        if kind is None:  # assess did not run: judge here
            kind = assess_image(item.image).kind
        image = item.image
        if kind == "color":
            image, route = remove_color_cast(image, p.cast_strength), "color-cast"
        elif p.monochrome == "neutral":
            image, route = neutralize(image), "neutralize-toning"
        else:
            route = "keep-toning"
        if p.contrast:
            image = auto_contrast(image, p.low_pct, p.high_pct, p.max_gain)
        return StageOutput(image=image, decisions={"kind": kind, "route": route, "contrast": p.contrast})
