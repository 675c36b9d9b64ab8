"""Tiny synthetic images for tests (no files from ../shared needed)."""

from __future__ import annotations

import numpy as np

from patina.flows.config import PipelineConfig
from patina.models import synthetic as syn


def gradient(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth colourful working image: horizontal red, vertical green, diagonal blue ramps."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), 1 - (x + y) / (w + h - 2)], axis=2).astype(np.float32) * 0.8 + 0.1


def scene(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth shapes of several colours: a colour photograph stand-in with real edges."""
    rng = np.random.default_rng(seed)
    image = np.empty((h, w, 3), dtype=np.float32)
    image[:] = rng.uniform(0.3, 0.7, 3)
    y, x = np.mgrid[0:h, 0:w]
    for _ in range(6):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(h // 8, h // 3)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0.1, 0.9, 3)
    return syn.blur(image, 1.0).image


def sepia_scene(**kwargs) -> np.ndarray:
    return syn.sepia(scene(**kwargs), 1.0).image


DEFAULT_STEPS = ["read", *PipelineConfig().stages, "write"]
"""Provenance steps of a default run (faces and colorize run only when asked for)."""


def slow_run_config(sleep_s: float) -> str:
    """A pipeline.toml whose one slow stage (a plugin: ``sleep_s`` per item, one actor) paces a run,
    with a provenance part committed per item (read, assess, enhance, write): for stopping a run midway."""
    return f"""
plugins = ["tests.plugin_stages"]
stages = ["assess", "enhance"]
[stage.enhance]
model = "test/fussy-invert@1"
params = {{ sleep_s = {sleep_s} }}
resources = {{ batch_size = 1, max_actors = 1 }}
[provenance]
flush_rows = 4
"""
