"""The ``restore-collection`` Prefect flow: manifest in, derivatives and provenance out."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from patina.actors.pipeline import RunSummary, ray_session, run_pipeline, summary_dict
from patina.actors.planning import PlannedRows, RunPlan, plan_spilled, remove_planned, spill_manifest
from patina.actors.settings import RunSettings
from patina.flows import progress
from patina.flows.config import ConfigError, PipelineConfig, refuse_credentials
from patina.flows.credentials import storage_options, with_secret
from patina.flows.report import write_report
from patina.manifests.buckets import BucketSpill, spill_folder
from patina.manifests.items import ManifestError
from patina.manifests.locations import OutputInsideMasters
from patina.manifests.planner import describe_counts
from patina.manifests.provenance import provenance_uri
from patina.manifests.readers import iter_manifest
from patina.manifests.run_lock import run_lock

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """Sortable, unique run id: ``YYYYMMDDTHHMMSSZ-xxxxxx``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what storage may fix by itself, never a bad manifest or output (the same answer would come again)."""
    return not isinstance(state.result(raise_on_failure=False), ManifestError | OutputInsideMasters)


RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": [2, 10], "retry_condition_fn": _transient}


@task(name="load-manifest", cache_policy=NO_CACHE, **RETRIES)
def load_manifest(
    manifest_uri: str, columns: dict[str, str], settings: RunSettings, folder: Path, secret_block: str | None
) -> BucketSpill:
    """Stream the manifest into a spill under ``folder``, every item checked; nothing is written to the output."""
    options = _with_secret(settings, secret_block).storage_options
    spilled = spill_manifest(iter_manifest(manifest_uri, options, columns), settings.output_uri, folder, options)
    get_run_logger().info("manifest %s: %d items", manifest_uri, int(spilled.rows_per_bucket.sum()))
    return spilled


@task(name="plan-items", cache_policy=NO_CACHE, **RETRIES)
def plan_items(
    spilled: BucketSpill, settings: RunSettings, everything: bool, verify: bool, secret_block: str | None
) -> RunPlan:
    """Plan the items against the output's provenance and write the rows to run; returns the counts."""
    planned = plan_spilled(spilled, _with_secret(settings, secret_block), everything=everything, verify=verify)
    if planned.counts is not None:
        get_run_logger().info("plan: %s", planned.counts)
        log.info("plan: %s", describe_counts(planned.counts))
    return planned


@task(name="restore-items", cache_policy=NO_CACHE)
def restore_items(
    rows: PlannedRows, settings: RunSettings, ray_address: str | None, num_cpus: int | None, secret_block: str | None
) -> RunSummary:
    with ray_session(ray_address, num_cpus):
        return run_pipeline(rows, _with_secret(settings, secret_block), progress=progress.current())


@task(name="write-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def report_items(output: str, run_id: str, storage_options: dict[str, Any], secret_block: str | None) -> str:
    return write_report(output, run_id, with_secret(storage_options, secret_block))


def _with_secret(settings: RunSettings, secret_block: str | None) -> RunSettings:
    """Settings with the Secret block's credentials: made inside each task, so no task parameter holds them."""
    if secret_block is None:
        return settings
    return dataclasses.replace(settings, storage_options=with_secret(settings.storage_options, secret_block))


def _artifact(summary: RunSummary) -> str:
    rate = summary.total / summary.duration_s if summary.duration_s > 0 else 0.0
    lines = [
        f"# patina run `{summary.run_id}`: {summary.status}",
        "",
        "| items | ok | failed | seconds | items/s | output | provenance | report |",
        "|---|---|---|---|---|---|---|---|",
        f"| {summary.total} | {summary.succeeded} | {summary.failed} | {summary.duration_s:.1f} | {rate:.2f} "
        f"| `{summary.output_uri}` | `{summary.provenance_uri}/{summary.run_id}` | `{summary.report_uri or '-'}` |",
    ]
    if summary.plan:
        lines += ["", f"plan: `{summary.plan}`"]
    if summary.failures:
        lines += ["", "| item | stage | error |", "|---|---|---|"]
        lines += [f"| `{f.item_id}` | {f.stage} | {f.error_type}: {f.error_message} |" for f in summary.failures[:200]]
    return "\n".join(lines)


@flow(name="restore-collection", log_prints=False)
def restore_collection(
    manifest: str,
    output: str,
    config: PipelineConfig | None = None,
    ray_address: str | None = None,
    everything: bool = False,
    models: dict[str, str] | None = None,
    run_id: str | None = None,
    verify: bool = False,
) -> dict[str, Any]:
    """Restore the items of ``manifest`` that need it into ``output``; returns the run summary.

    Items whose every chain key matches the provenance already under ``output`` are left alone
    (see :mod:`patina.manifests.planner`); ``everything`` runs every item regardless.
    ``models`` (``{stage: model id}``) overrides the config's models: tonight's model set.
    ``run_id`` defaults to a new one (the CLI passes its own: it names the run's log file).
    ``verify``: an unchanged item's derivative must also keep its sha256 (each is read), not only its size.
    """
    refuse_credentials(manifest, output)
    config = config or PipelineConfig()
    if models:
        config = config.with_models(models)
    run_id = run_id or new_run_id()
    settings = config.run_settings(run_id, output)
    secret = config.storage.secret_block  # its name travels; its value is read inside each task
    with tempfile.TemporaryDirectory(prefix="patina-plan-", dir=spill_folder()) as folder:
        try:  # the manifest is read and checked before the output is touched
            spilled = load_manifest(manifest, config.manifest.columns, settings, Path(folder), secret)
        except OutputInsideMasters as exc:
            raise ConfigError(str(exc)) from exc
        with run_lock(output, run_id, storage_options(config)):  # one run at a time per output: plan to report
            planned = plan_items(spilled, settings, everything, verify, secret)
            try:
                if planned.rows is not None:
                    address = ray_address or config.ray.address
                    summary = restore_items(planned.rows, settings, address, config.ray.num_cpus, secret)
                else:
                    summary = RunSummary(run_id, output, provenance_uri(output))
            finally:
                remove_planned(planned.rows, with_secret(config.storage.options, secret))
            summary.plan = planned.counts
            if summary.total:
                try:
                    summary.report_uri = report_items(output, run_id, config.storage.options, secret)
                except Exception as exc:  # noqa: BLE001 - a report that cannot be written never fails the run
                    get_run_logger().warning("no report for run %s: %s", run_id, exc)
    create_markdown_artifact(_artifact(summary), key="patina-run", description=f"patina run {run_id}")
    get_run_logger().info(
        "run %s %s: %d ok, %d failed of %d", run_id, summary.status, summary.succeeded, summary.failed, summary.total
    )
    return summary_dict(summary)
