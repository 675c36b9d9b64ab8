"""Plan a run against the provenance already under its output (glue around manifests/planner.py)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from patina.actors.intermediates import intermediate_uri
from patina.actors.io_tasks import write_step
from patina.actors.settings import RunSettings, stage_identity
from patina.manifests.items import Item
from patina.manifests.planner import LatestAttempts, Plan, StepIdentity, plan
from patina.manifests.provenance import read_latest_attempts, step_link
from patina.manifests.storage import filesystem, source_stamps
from patina.models.codecs import output_format

STAMP_THREADS = 32  # concurrent metadata requests (stat / HEAD) when planning


def plan_run(items: Sequence[Item], settings: RunSettings) -> Plan:
    """What running ``items`` with ``settings`` must do, given the provenance under its output."""
    latest = LatestAttempts(read_latest_attempts(settings.output_uri, settings.storage_options))
    steps: list[StepIdentity] = [(s.stage, *stage_identity(s)) for s in settings.stages]

    @functools.cache  # one link per output format, not one per item
    def write_link(source_format: str) -> tuple[str, str]:
        step = write_step(output_format(source_format, settings.output_format), settings)
        return step.stage, step_link(step.model_id, step.model_sha256, step.params)

    known = [item for item in items if item.item_id in latest]  # new items need no stamp
    by_uri = source_stamps({item.source_uri for item in known}, settings.storage_options, STAMP_THREADS)
    stamps = {item.item_id: by_uri[item.source_uri] for item in known}
    planned = plan(items, latest, steps, write_link, stamps)
    if settings.keep_intermediates and planned.resume_points:
        fs, _ = filesystem(settings.output_uri, settings.storage_options)
        points = list(planned.resume_points.items())
        with ThreadPoolExecutor(STAMP_THREADS) as pool:
            kept = pool.map(lambda p: fs.exists(intermediate_uri(settings.output_uri, p[1][1])), points)
            found = {item_id: point for (item_id, point), exists in zip(points, kept, strict=True) if exists}
        planned = dataclasses.replace(planned, resume=found)
    return planned
