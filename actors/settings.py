"""Frozen run settings handed to Ray tasks and actors (validated earlier, in flows.config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from patina.manifests.retry import RetryPolicy
from patina.models.registry import entry
from patina.models.tiling import LargeImagePolicy


@dataclass(frozen=True)
class Resources:
    """How one stage's actor pool is sized and placed (a shared pool: the same for all its stages)."""

    batch_size: int = 4
    min_actors: int = 1
    max_actors: int | None = None  # None: as many as the cluster has CPUs (GPUs for a GPU pool)
    num_cpus: float = 0.25
    num_gpus: float | None = 0.0  # None: a whole GPU where the cluster has one, else the CPU (placement decides)
    memory_bytes: int | None = None
    gpu_fallback: str = "fail"  # "fail" | "cpu": what to do when num_gpus > 0 and the cluster has no GPU
    # Adjacent stages with the same pool name and resources share one actor pool. "" (network stages
    # left automatic): placement decides, their own pool on a GPU cluster, else the shared CPU pool.
    pool: str = ""


CPU_POOL = "classical"
"""The pool the classical stages share, and on a cluster without GPUs the automatic network stages too."""


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
    max_pixels: int = 178_956_970
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
