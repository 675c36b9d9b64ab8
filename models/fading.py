"""Faded colour prints: a learned estimate of the per-channel density curves that undo dye fading.

A chromogenic print fades in density: each dye keeps a fraction of its density (cyan most often
loses most) and the base yellows (:func:`patina.models.synthetic.dye_fade`). The correction is
the inverse, a scale and an offset of each channel's density (:func:`~patina.models.tone.apply_density_curves`).
No statistic of the pixels alone separates a faded print from a scene of a dominant colour, so the
curves are estimated by a small network (:mod:`patina.models.fade_network`, about 8,000
parameters) from the picture's per-channel density percentiles, trained on corpus photographs
faded at random and on unfaded ones (whose curves are the identity). This module is the numpy side
(no torch): the features and the curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from patina.models.image import check_image
from patina.models.spec import ModelSpec
from patina.models.tone import apply_density_curves, to_density

PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
FEATURES = 2 * 3 * len(PERCENTILES) + 3
THUMBNAIL_PX = 128  # the picture is judged on a copy this big (its percentiles, not its details, matter)

FADE_CURVES = ModelSpec(
    id="patina/fade-curves@1",
    stage="assess",
    architecture="PatinaFadeNet",
    license="Apache-2.0; trained on openly licensed photographs (weights/fade-curves-1.training-data.csv)",
    description="per-channel density curves that undo dye fading (model card: weights/fade-curves-1.model-card.md)",
    weights_uri="package:patina.models/weights/fade-curves-1.safetensors",
    sha256="355c8a794cb2a21c2224350d95b204d24cf344b7362ab0b70ca473b7770f53e9",
    memory_mb=50,
)


def thumbnail(image: np.ndarray, px: int = THUMBNAIL_PX) -> np.ndarray:
    scale = px / max(check_image(image).shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def fade_features(image: np.ndarray) -> np.ndarray:
    """``(FEATURES,)`` float32: each channel's density percentiles, the same relative to the mean
    density of the pixel, and each channel's density spread (of a thumbnail of ``image``)."""
    density = to_density(thumbnail(image)).reshape(-1, 3)
    relative = density - density.mean(axis=1, keepdims=True)
    return np.concatenate(
        [np.percentile(density, PERCENTILES, axis=0).ravel(), np.percentile(relative, PERCENTILES, axis=0).ravel(),
         density.std(axis=0)]
    ).astype(np.float32)  # fmt: skip


@dataclass(frozen=True)
class FadeEstimate:
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    effect: float  # mean dE*ab (CIE 1976) the curves make on the picture's thumbnail

    def apply(self, image: np.ndarray, strength: float = 1.0, soft: bool = False) -> np.ndarray:
        """The curves at ``strength`` (0: none, 1: all) on a working image or tile (pointwise);
        ``soft``: rolled off at the ends instead of clipped (:func:`~patina.models.tone.soft_ends`)."""
        scale = 1.0 + strength * (np.asarray(self.scale, np.float32) - 1.0)
        return apply_density_curves(image, scale, strength * np.asarray(self.offset, np.float32), soft)
