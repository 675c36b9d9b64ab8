"""Stage variants named on a benchmark's command line: ``MODEL_ID`` or ``MODEL_ID:key=value,key=value``.

Two variants of one model (``patina/damage-unet@2:edge_band=0`` beside ``patina/damage-unet@2``) run side
by side in one benchmark run, so their figures are measured on the same pictures at the same time.
Values are read as JSON where they parse (numbers, booleans, lists) and as text otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from patina.models.registry import as_params, build_stage, default_params


def parse_variant(choice: str) -> tuple[str, dict[str, Any]]:
    """``(model_id, overrides)`` of ``choice``."""
    model, _, given = choice.partition(":")
    overrides: dict[str, Any] = {}
    for pair in filter(None, given.split(",")):
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{choice!r}: {pair!r} is not key=value")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return model, overrides


def build_variant(choice: str):
    """The stage ``choice`` names, its params the model's defaults with the overrides applied."""
    import dataclasses

    model, overrides = parse_variant(choice)
    params = default_params(model)
    if overrides:
        params = as_params(model, {**dataclasses.asdict(params), **overrides})
    return build_stage(model, params)
