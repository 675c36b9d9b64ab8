"""A model plugin used by the tests: an enhance stage that fails on marked images.

Loaded through ``plugins = ["tests.plugin_stages"]`` like any user plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from patina.models.registry import register
from patina.models.spec import ModelSpec
from patina.models.stage import Stage, StageInput, StageOutput


@dataclass(frozen=True)
class InvertParams:
    fail_below_height: int = 0  # images shorter than this fail


class FussyInvert(Stage):
    """Inverts images; raises on images shorter than ``fail_below_height`` px."""

    stage = "enhance"
    params_type = InvertParams

    def process(self, item: StageInput) -> StageOutput:
        if item.image.shape[0] < self.params.fail_below_height:
            raise RuntimeError(f"image height {item.image.shape[0]} is below {self.params.fail_below_height}")
        return StageOutput(image=(1.0 - item.image).astype(np.float32), decisions={"inverted": True})


register(ModelSpec("test/fussy-invert@1", "enhance", "classical", "Apache-2.0", "test plugin"), FussyInvert)
