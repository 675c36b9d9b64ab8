"""Typed pipeline configuration: one pydantic model, validated at the boundary.

A ``pipeline.toml`` looks like::

    stages = ["assess", "detect_damage", "inpaint", "enhance"]

    [stage.enhance]
    model = "classical/tone@3"
    params = { max_gain = 2.5 }
    resources = { batch_size = 8, num_cpus = 0.5 }

    [output]
    format = "png"

Everything has a default; an empty file (or none) runs the default pipeline. Inside patina the
validated config becomes frozen :mod:`patina.actors.settings` dataclasses.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from patina.actors.settings import AUTO_POOL, CPU_POOL, Resources, RunSettings, StageSettings
from patina.manifests.readers import FIELDS as MANIFEST_FIELDS
from patina.manifests.redaction import has_credentials, redact
from patina.manifests.retry import RetryPolicy
from patina.models import registry
from patina.models.stage import STAGE_ORDER
from patina.models.tiling import LargeImagePolicy
from patina.models.weights import WeightsError, resolved_sha256

StageName = Literal[STAGE_ORDER]  # type: ignore[valid-type] - the stage names, from their one list


class ConfigError(ValueError):
    """The configuration is invalid (the message names the file and the field)."""


def refuse_credentials(manifest: str, output: str) -> None:
    """A manifest or output URI holding credentials is refused: it would be stored with every flow run."""
    for what, uri in (("manifest", manifest), ("output", output)):
        if has_credentials(uri):
            raise ConfigError(
                f"the {what} URI {redact(uri)!r} holds credentials (user:password@ or a signed query): it would "
                "be stored in Prefect's database and the logs; give them through the environment, an AWS profile "
                "or [storage] secret_block, and the URI without them"
            )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageConfig(_Strict):
    model: str | None = None  # None: the registry's default for the stage
    params: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)


class OutputConfig(_Strict):
    format: Literal["auto", "png", "jpeg", "tiff", "ptif", "webp"] = RunSettings.output_format
    jpeg_quality: int = Field(RunSettings.jpeg_quality, ge=1, le=100)
    masks: bool = RunSettings.masks  # OUT/_masks/KEY.png: the damage mask the inpainter filled
    tile_compression: Literal["jpeg", "deflate"] = RunSettings.tile_compression  # ptif tiles (16 bits: deflate)


class InputConfig(_Strict):
    max_pixels: int = Field(RunSettings.max_pixels, ge=1)  # refuse larger images before decoding them
    max_bytes: int = Field(RunSettings.max_bytes, ge=1)  # refuse larger masters before reading them
    read_stall_s: float = Field(RunSettings.read_stall_s, gt=0)  # a read idle this long fails the item


class RayConfig(_Strict):
    address: str | None = None  # join this cluster; None starts a local Ray in-process
    num_cpus: int | None = Field(None, ge=1)  # local Ray only
    io_num_cpus: float = Field(RunSettings.io_num_cpus, gt=0)  # CPUs reserved per read/write task


class ProvenanceConfig(_Strict):
    """When the log commits a Parquet part; items done but not yet committed are redone after a crash."""

    flush_rows: int = Field(RunSettings.provenance_flush_rows, ge=1)
    flush_seconds: float = Field(RunSettings.provenance_flush_seconds, gt=0)


class ManifestConfig(_Strict):
    """How to read a collection's own manifest: ``[manifest.columns] title = "Title"`` maps patina's fields
    to its column names (CSV, Parquet), keys (JSON Lines) or ``metadata`` labels (IIIF)."""

    columns: dict[str, str] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(MANIFEST_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; patina's fields are {list(MANIFEST_FIELDS)}")
        return columns


CREDENTIAL_KEYS = frozenset(
    {"key", "secret", "token", "password", "session_token", "client_secret", "account_key", "sas_token",
     "connection_string", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
)  # fmt: skip
"""fsspec storage options that hold credentials: refused in a config (it travels as a flow-run parameter)."""


def _credentials_in(options: Any, where: str = "storage.options") -> list[str]:
    if isinstance(options, dict):
        found = [f"{where}.{k}" for k, v in options.items() if str(k).lower() in CREDENTIAL_KEYS and v]
        return found + [p for k, v in options.items() for p in _credentials_in(v, f"{where}.{k}")]
    return []


class StorageConfig(_Strict):
    options: dict[str, Any] = Field(default_factory=dict)  # fsspec storage_options, no credentials
    # A Prefect Secret block whose value is a JSON object of credential options ({"key": ..., "secret": ...}),
    # merged into `options` at run time; its value never travels as a parameter (flows/credentials.py).
    secret_block: str | None = Field(None, min_length=1)
    # Transient errors (throttling, 5xx, resets, timeouts) of each read and write: attempts in all,
    # capped exponential backoff with jitter (manifests/retry.py). Missing, forbidden: never retried.
    attempts: int = Field(RetryPolicy.attempts, ge=1)
    backoff_s: float = Field(RetryPolicy.backoff_s, ge=0)
    backoff_cap_s: float = Field(RetryPolicy.cap_s, ge=0)

    @field_validator("options")
    @classmethod
    def _no_credentials(cls, options: dict[str, Any]) -> dict[str, Any]:
        if found := _credentials_in(options):
            raise ValueError(
                f"credentials in the config ({', '.join(found)}): a config travels with every flow run as a "
                "parameter, stored in Prefect's database and shown in its UI. Give them through the environment "
                '(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), an AWS profile (options.profile = "archive"), or a '
                'Prefect Secret block holding them as JSON: [storage] secret_block = "archive-s3"'
            )
        return options


class PipelineConfig(_Strict):
    plugins: list[str] = Field(default_factory=list)  # modules registering extra models
    # model catalogues (TOML [[model]] lists, e.g. the one `patina train` writes); relative to the config file
    catalogues: list[str] = Field(default_factory=list)
    keep_intermediates: bool = False  # keep each stage's result: an upgrade of stage X then resumes there
    stages: list[StageName] = Field(default_factory=lambda: list(registry.DEFAULT_STAGES))
    stage: dict[StageName, StageConfig] = Field(default_factory=dict)
    output: OutputConfig = Field(default_factory=OutputConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    large_images: LargeImagePolicy = Field(default_factory=LargeImagePolicy)
    ray: RayConfig = Field(default_factory=RayConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    manifest: ManifestConfig = Field(default_factory=ManifestConfig)
    provenance: ProvenanceConfig = Field(default_factory=ProvenanceConfig)

    @field_validator("stages")
    @classmethod
    def _canonical_order(cls, stages: list[str]) -> list[str]:
        if len(set(stages)) != len(stages):
            raise ValueError(f"stages repeat a name: {stages}")
        ordered = sorted(stages, key=STAGE_ORDER.index)
        if ordered != stages:
            raise ValueError(f"stages must follow the order {list(STAGE_ORDER)}; got {stages}")
        return stages

    @model_validator(mode="after")
    def _models_resolve(self) -> PipelineConfig:
        settings = [self.stage_settings(name) for name in self.stages]  # raises with the stage named
        for first, second in itertools.pairwise(settings):
            named = self.stage.get(second.stage, StageConfig()).resources.pool
            if named != AUTO_POOL and named == first.resources.pool and first.resources != second.resources:
                raise ValueError(
                    f"stages {first.stage!r} and {second.stage!r} share pool {named!r} but their resources differ; "
                    "give them the same resources, or separate pools"
                )
        return self

    def with_models(self, models: dict[str, str]) -> PipelineConfig:
        """This config with the given ``{stage: model id}`` (a model set), validated like a file's."""
        data = self.model_dump()
        for stage, model_id in models.items():
            conf = data["stage"].setdefault(stage, {})
            if stage not in self.stages or model_id != self.model_id(stage):
                conf["params"] = {}  # params belong to a model: another model starts from its defaults
            conf["model"] = model_id
        return parse_config(data, "model set")

    def model_id(self, stage: str) -> str:
        configured = self.stage.get(stage, StageConfig()).model
        model_id = configured or registry.DEFAULT_MODELS.get(stage)
        if model_id is None:
            raise ValueError(f"stage {stage!r} has no default model (no weights ship for it); set stage.{stage}.model")
        return model_id

    def stage_settings(self, stage: str) -> StageSettings:
        """Frozen settings of one stage, with its params typed by its model."""
        conf = self.stage.get(stage, StageConfig())
        model_id = self.model_id(stage)
        try:
            spec = registry.entry(model_id).spec
            params = registry.as_params(model_id, conf.params)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"stage {stage!r}: {exc}") from exc
        if spec.stage != stage:
            raise ValueError(f"stage {stage!r}: model {model_id} is a {spec.stage!r} model")
        return StageSettings(
            stage=stage,
            model_id=model_id,
            params=params,
            resources=resolved_resources(conf.resources, stage, spec.architecture),
            plugins=tuple(self.plugins),
            large=self.large_images,
            catalogues=tuple(self.catalogues),
        )

    @staticmethod
    def _with_weights(settings: StageSettings) -> StageSettings:
        """Settings carrying the weights' sha256, resolved once here (the driver) for planner and actors."""
        spec = registry.entry(settings.model_id).spec
        try:
            sha = resolved_sha256(spec)
        except WeightsError as exc:
            raise WeightsError(f"stage {settings.stage!r}: {exc}") from exc
        return dataclasses.replace(settings, weights_sha256=sha)

    def run_settings(self, run_id: str, output_uri: str) -> RunSettings:
        return RunSettings(
            run_id=run_id,
            output_uri=output_uri,
            stages=tuple(self._with_weights(self.stage_settings(s)) for s in self.stages),
            output_format=self.output.format,
            jpeg_quality=self.output.jpeg_quality,
            masks=self.output.masks,
            tile_compression=self.output.tile_compression,
            max_pixels=self.input.max_pixels,
            max_bytes=self.input.max_bytes,
            read_stall_s=self.input.read_stall_s,
            io_num_cpus=self.ray.io_num_cpus,
            storage_options=dict(self.storage.options),
            keep_intermediates=self.keep_intermediates,
            provenance_flush_rows=self.provenance.flush_rows,
            provenance_flush_seconds=self.provenance.flush_seconds,
            retry=RetryPolicy(self.storage.attempts, self.storage.backoff_s, self.storage.backoff_cap_s),
        )


def resolved_resources(configured: Resources, stage: str, architecture: str) -> Resources:
    """A stage's resources as its actors get them: a classical stage's automatic ``num_gpus`` is 0, and
    ``pool = "auto"`` becomes the CPU pool (classical CPU stages), stays automatic (a network left
    automatic: :func:`patina.actors.pipeline.place_stages` decides at run time) or names the stage's own."""
    classical = architecture == "classical"
    num_gpus = 0.0 if configured.num_gpus is None and classical else configured.num_gpus
    pool = configured.pool
    if pool == AUTO_POOL and (classical and not num_gpus):
        pool = CPU_POOL
    elif pool == AUTO_POOL and num_gpus is not None:
        pool = stage
    return dataclasses.replace(configured, num_gpus=num_gpus, pool=pool)


def load_config(path: str | Path | None) -> PipelineConfig:
    """Read and validate a TOML config file; ``None`` gives the defaults."""
    if path is None:
        return PipelineConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if isinstance(data.get("catalogues"), list):  # relative to the config file, never to the working directory
        data["catalogues"] = [str((path.parent / c).resolve()) if isinstance(c, str) else c for c in data["catalogues"]]
    return parse_config(data, str(path))


class _Extensions(BaseModel):
    """The part of a config that brings models in: read first, so that the stages can name them."""

    model_config = ConfigDict(extra="ignore")
    plugins: list[str] = Field(default_factory=list)
    catalogues: list[str] = Field(default_factory=list)


def parse_config(data: dict[str, Any], source: str = "config") -> PipelineConfig:
    """Validate a config's data: its plugins and catalogues are registered first, then everything else."""
    try:
        extensions = _Extensions.model_validate(data)
        try:
            registry.load_extensions(extensions.plugins, extensions.catalogues)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from exc
