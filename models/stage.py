"""The one stage protocol: a stage turns a batch of working images into restored ones.

A stage is constructed once per actor from a :class:`~patina.models.spec.ModelSpec` and a
frozen params dataclass, then called on batches. It is pure image code: no Ray, no Prefect,
no I/O beyond loading its own weights. Image layout: see :mod:`patina.models.image`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from patina.models.spec import ModelSpec

STAGE_ORDER: tuple[str, ...] = ("assess", "detect_damage", "inpaint", "enhance", "faces", "colorize")
"""Canonical order of the restoration stages; a pipeline runs a subsequence of it."""


@dataclass(frozen=True)
class StageInput:
    """One item as a stage sees it."""

    image: np.ndarray  # working float32 (H, W, 3): the whole image, a tile of it, or a proxy
    mask: np.ndarray | None = None  # bool (H, W) damage mask from detect_damage, if any
    decisions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # earlier stages'
    analysis: Mapping[str, Any] = field(default_factory=dict)  # this stage's analyze(), shared by tiles


@dataclass(frozen=True)
class StageOutput:
    """What a stage did to one item.

    ``applied=False`` means the stage decided not to act (routing); provenance records it as
    ``skipped`` with ``decisions`` explaining why. ``mask=None`` keeps the incoming mask.
    """

    image: np.ndarray
    decisions: Mapping[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None
    applied: bool = True


class Stage:
    """Base class of every stage implementation.

    Subclasses set ``stage`` (one of :data:`STAGE_ORDER`) and ``params_type`` (a frozen
    dataclass whose defaults are the recommended settings), and implement :meth:`process`
    (one item) or, for batched models, :meth:`process_batch`.

    Large images (:mod:`patina.models.tiling`) never become one float32 array: a stage that
    only measures (``changes_pixels = False``) runs on a proxy; a local one (``tile_halo()``
    not None) runs tile by tile, its whole-image measurements taken once by :meth:`analyze`
    on a sample (``analysis_sample``: a downscaled ``proxy`` or a full-resolution ``crop``)
    and handed to every tile in ``StageInput.analysis``.
    """

    stage: ClassVar[str]
    params_type: ClassVar[type]
    device: str = "cpu"
    changes_pixels: ClassVar[bool] = True
    uses_mask: ClassVar[bool] = False  # reads the damage mask (it is decoded only for such stages)
    analysis_sample: ClassVar[str] = "proxy"  # "proxy" | "crop"

    def __init__(self, spec: ModelSpec, params: Any) -> None:
        if not isinstance(params, self.params_type):
            raise TypeError(f"{spec.id}: params must be {self.params_type.__name__}, got {type(params).__name__}")
        if spec.stage != self.stage:
            raise ValueError(f"{spec.id} is a {spec.stage!r} model, not a {self.stage!r} one")
        self.spec = spec
        self.params = params

    @classmethod
    def auxiliary_weights(cls) -> tuple[ModelSpec, ...]:
        """Weights the stage needs beside its model's own (fetched by the driver before actors start)."""
        return ()

    def tile_halo(self) -> int | None:
        """Context pixels a tile needs on each side, or None when the stage needs the whole image."""
        return None

    def analyze(self, item: StageInput) -> dict[str, Any]:
        """Whole-image measurements that every tile must share (none by default)."""
        return {}

    def process(self, item: StageInput) -> StageOutput:
        raise NotImplementedError

    def process_batch(self, items: Sequence[StageInput]) -> list[StageOutput]:
        """Process a batch; the default runs :meth:`process` item by item."""
        return [self.process(item) for item in items]
