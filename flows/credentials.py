"""Storage credentials at run time: the config's options plus a Prefect Secret block's, never a parameter.

``[storage] secret_block = "archive-s3"`` names a Prefect Secret block whose value is a JSON
object of fsspec options (``{"key": "...", "secret": "..."}``). It is read where storage is
used (the CLI, the flow), merged into the storage options in memory and handed to Ray with the
run's settings; the config itself, which Prefect stores with every flow run, never holds it.
"""

from __future__ import annotations

from typing import Any

from patina.flows.config import ConfigError, PipelineConfig


def storage_options(config: PipelineConfig) -> dict[str, Any]:
    """The storage options to use: the config's, with its Secret block's merged in."""
    return with_secret(config.storage.options, config.storage.secret_block)


def with_secret(options: dict[str, Any], secret_block: str | None) -> dict[str, Any]:
    """``options`` with the named Secret block's merged in (read now, held only in memory)."""
    if secret_block is None:
        return dict(options)
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(secret_block).get()
    except ValueError as exc:
        raise ConfigError(f"storage.secret_block: no Prefect Secret block named {secret_block!r} ({exc})") from exc
    if not isinstance(value, dict):
        raise ConfigError(
            f"storage.secret_block {secret_block!r}: its value must be a JSON object of storage options, "
            'e.g. {"key": "...", "secret": "..."}'
        )
    return {**options, **value}
