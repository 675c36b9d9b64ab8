"""Registry of the models patina can run, keyed by model id.

Each entry pairs a :class:`~patina.models.spec.ModelSpec` (identity, licence, weights) with
the :class:`~patina.models.stage.Stage` class that runs it. Variants of one implementation
are separate specs over the same class, never copies of code.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from patina.models.classical import AssessStage, SpeckDetectStage, TeleaInpaintStage, ToneStage
from patina.models.spec import ModelSpec
from patina.models.stage import STAGE_ORDER, Stage


@dataclass(frozen=True)
class RegistryEntry:
    spec: ModelSpec
    implementation: type[Stage]


def _classical(model_id: str, implementation: type[Stage], description: str) -> RegistryEntry:
    spec = ModelSpec(
        id=model_id,
        stage=implementation.stage,
        architecture="classical",
        license="Apache-2.0",
        description=description,
    )
    return RegistryEntry(spec, implementation)


_ENTRIES: dict[str, RegistryEntry] = {
    e.spec.id: e
    for e in (
        _classical("classical/assess@1", AssessStage, "CIELAB chroma statistics, Immerkaer noise, Laplacian sharpness"),
        _classical("classical/speck-detector@2", SpeckDetectStage, "white/black top-hat dust and speck detector"),
        _classical("classical/telea-inpaint@1", TeleaInpaintStage, "OpenCV Telea fast-marching inpainting"),
        _classical("classical/tone@1", ToneStage, "shades-of-gray colour cast, toning removal, luma auto-contrast"),
    )
}

DEFAULT_MODELS: dict[str, str] = {
    "assess": "classical/assess@1",
    "detect_damage": "classical/speck-detector@2",
    "inpaint": "classical/telea-inpaint@1",
    "enhance": "classical/tone@1",
}
"""Default model per stage; stages missing here have no default yet and must be configured."""


def load_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import plugin modules; each registers its models with :func:`register` on import."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"model plugin {name!r} cannot be imported: {exc}") from exc


def register(spec: ModelSpec, implementation: type[Stage]) -> None:
    """Add a model (for plugins and tests); an id can be registered once only."""
    if _ENTRIES.get(spec.id) == RegistryEntry(spec, implementation):
        return  # the same plugin imported twice
    if spec.id in _ENTRIES:
        raise ValueError(f"model id {spec.id!r} is already registered")
    if spec.stage != implementation.stage:
        raise ValueError(f"{spec.id}: spec stage {spec.stage!r} != implementation stage {implementation.stage!r}")
    _ENTRIES[spec.id] = RegistryEntry(spec, implementation)


def entry(model_id: str) -> RegistryEntry:
    """The registry entry for ``model_id``; ``KeyError`` lists the known ids."""
    try:
        return _ENTRIES[model_id]
    except KeyError:
        known = ", ".join(sorted(_ENTRIES))
        raise KeyError(f"unknown model id {model_id!r}; known: {known}") from None


def entries() -> list[RegistryEntry]:
    """All entries in canonical stage order, then by id."""
    return sorted(_ENTRIES.values(), key=lambda e: (STAGE_ORDER.index(e.spec.stage), e.spec.id))


def build_stage(model_id: str, params: Any) -> Stage:
    """Instantiate the stage for ``model_id`` with a params dataclass instance."""
    found = entry(model_id)
    return found.implementation(found.spec, params)


def default_params(model_id: str) -> Any:
    """The params dataclass of ``model_id`` with its defaults."""
    return entry(model_id).implementation.params_type()


def params_type(model_id: str) -> type:
    return entry(model_id).implementation.params_type


def as_params(model_id: str, values: Mapping[str, Any]) -> Any:
    """Typed params for ``model_id`` from plain values (unknown keys are an error)."""
    kind = params_type(model_id)
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{model_id}: unknown parameter(s) {unknown}; known: {sorted(known)}")
    return TypeAdapter(kind).validate_python(dict(values))
