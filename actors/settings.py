"""Frozen run settings handed to Ray tasks and actors (validated earlier, in flows.config).

These dataclasses hold the one set of defaults: the config (:mod:`patina.flows.config`) validates
:class:`Resources` and :class:`~patina.models.tiling.LargeImagePolicy` as they are (their
constraints are ``annotated_types`` that pydantic honours) and takes its other defaults from
:class:`RunSettings` by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, MinLen

from patina.manifests.retry import RetryPolicy
from patina.models.registry import entry
from patina.models.tiling import LargeImagePolicy

AUTO_POOL = "auto"
"""``pool = "auto"``: classical CPU stages share :data:`CPU_POOL`; a network stage with ``num_gpus``
unset is placed at run time (its own pool on a GPU cluster, else the CPU pool); any other stage gets
a pool of its own (:func:`patina.flows.config.resolved_resources`, :func:`patina.actors.pipeline.place_stages`)."""

CPU_POOL = "classical"
"""The pool the classical stages share, and on a cluster without GPUs the automatic network stages too."""


@dataclass(frozen=True)
class Resources:
    """How one stage's actor pool is sized and placed (a shared pool: the same for all its stages).

    As configured (``[stage.NAME.resources]``) and, resolved, as the actors get it.
    """

    __pydantic_config__ = {"extra": "forbid"}  # noqa: RUF012 - read by pydantic, never mutated

    batch_size: Annotated[int, Ge(1)] = 4
    min_actors: Annotated[int, Ge(1)] = 1
    max_actors: Annotated[int, Ge(1)] | None = None  # None: one per CPU of the cluster (per GPU share for GPU pools)
    num_cpus: Annotated[float, Gt(0)] = 0.25
    # None: automatic (classical stages 0; network stages a share of the GPUs where the cluster has them, else CPU)
    num_gpus: Annotated[float, Ge(0)] | None = None
    memory_mb: Annotated[int, Ge(1)] | None = None  # None: from the models' measured memory_mb
    gpu_fallback: Literal["fail", "cpu"] = "fail"  # no GPU in the cluster: fail fast, or run on the CPU
    # Adjacent stages with the same pool name and resources share one actor pool (see AUTO_POOL).
    pool: Annotated[str, MinLen(1)] = AUTO_POOL

    def __post_init__(self) -> None:
        if self.max_actors is not None and self.max_actors < self.min_actors:
            raise ValueError(f"max_actors ({self.max_actors}) is below min_actors ({self.min_actors})")


@dataclass(frozen=True)
class StageSettings:
    stage: str
    model_id: str
    params: Any  # the model's frozen params dataclass
    resources: Resources = field(default_factory=Resources)
    plugins: tuple[str, ...] = ()  # modules to import so that ``model_id`` is registered
    large: LargeImagePolicy = field(default_factory=LargeImagePolicy)  # when and how to tile
    catalogues: tuple[str, ...] = ()  # model catalogue files to register so that ``model_id`` is known
    weights_sha256: str | None = None  # resolved by the driver (spec's sha256, or the pin of a pulled checkpoint)


@dataclass(frozen=True)
class RunSettings:
    run_id: str
    output_uri: str
    stages: tuple[StageSettings, ...]
    output_format: str = "auto"
    jpeg_quality: int = 95
    tile_compression: str = "jpeg"  # ptif tiles: jpeg (8 bits; 16 bits take deflate) or deflate
    masks: bool = False  # write each item's damage mask as OUT/_masks/KEY.png (the report outlines it)
    max_pixels: int = 250_000_000  # refuse larger images before decoding them
    max_bytes: int = 4 * 2**30  # refuse larger masters before reading them
    read_stall_s: float = 120.0  # a master's read that delivers nothing this long fails the item
    io_num_cpus: float = 0.25
    storage_options: dict[str, Any] = field(default_factory=dict)
    keep_intermediates: bool = False  # save every stage's result by chain key (actors/intermediates.py)
    provenance_flush_rows: int = 5000  # commit a provenance part after this many rows...
    provenance_flush_seconds: float = 30.0  # ... or this long: a crash loses at most this much of the log
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # transient storage errors of reads and writes


def stage_identity(settings: StageSettings) -> tuple[str, str | None, dict[str, Any]]:
    """``(model_id, weights sha256, params)``: what a stage's chain key covers.

    One definition for the actors that extend chain keys and the planner that predicts them.
    """
    spec = entry(settings.model_id).spec
    return spec.id, settings.weights_sha256 or spec.sha256, dataclasses.asdict(settings.params)
