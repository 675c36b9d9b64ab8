"""A model plugin used by the tests: an enhance stage that fails on marked images.

Loaded through ``plugins = ["tests.plugin_stages"]`` like any user plugin.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from patina.models.registry import register
from patina.models.spec import ModelSpec
from patina.models.stage import Stage, StageInput, StageOutput


@dataclass(frozen=True)
class InvertParams:
    fail_below_height: int = 0  # images shorter than this fail
    sleep_s: float = 0.0  # time taken per image (to kill an actor mid-run)
    pid_dir: str = ""  # each actor process keeps a file named by its pid here, holding its item count


class FussyInvert(Stage):
    """Inverts images; raises on images shorter than ``fail_below_height`` px."""

    stage = "enhance"
    params_type = InvertParams

    def __init__(self, spec: ModelSpec, params: InvertParams) -> None:
        super().__init__(spec, params)
        self.count = 0
        if params.pid_dir:
            Path(params.pid_dir, str(os.getpid())).write_text("0")

    def process(self, item: StageInput) -> StageOutput:
        time.sleep(self.params.sleep_s)
        self.count += 1
        if self.params.pid_dir:
            Path(self.params.pid_dir, str(os.getpid())).write_text(str(self.count))
        if item.image.shape[0] < self.params.fail_below_height:
            raise RuntimeError(f"image height {item.image.shape[0]} is below {self.params.fail_below_height}")
        return StageOutput(image=(1.0 - item.image).astype(np.float32), decisions={"inverted": True})


register(ModelSpec("test/fussy-invert@1", "enhance", "classical", "Apache-2.0", "test plugin"), FussyInvert)
