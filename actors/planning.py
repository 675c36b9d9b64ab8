"""Plan a run against the provenance already under its output (glue around manifests/planner.py)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from patina.actors.intermediates import intermediate_uri
from patina.actors.io_tasks import write_step
from patina.actors.settings import RunSettings, stage_identity
from patina.manifests.items import Item
from patina.manifests.planner import Plan, StepIdentity, plan
from patina.manifests.provenance import read_provenance
from patina.manifests.storage import filesystem, source_stamp
from patina.models.codecs import output_format

STAMP_THREADS = 32  # concurrent metadata requests (stat / HEAD) when planning


def plan_run(items: Sequence[Item], settings: RunSettings) -> Plan:
    """What running ``items`` with ``settings`` must do, given the provenance under its output."""
    history = read_provenance(settings.output_uri, settings.storage_options)
    steps: list[StepIdentity] = [(s.stage, *stage_identity(s)) for s in settings.stages]

    def write_identity(read_decisions: dict[str, Any]) -> StepIdentity:
        step = write_step(output_format(read_decisions.get("format", ""), settings.output_format), settings)
        return step.stage, step.model_id, step.model_sha256, step.params

    known = set(history["item_id"].to_pylist()) if history.num_rows else set()
    seen = [item for item in items if item.item_id in known]  # new items need no stamp
    with ThreadPoolExecutor(STAMP_THREADS) as pool:
        found = pool.map(lambda item: source_stamp(item.source_uri, settings.storage_options), seen)
        stamps = {item.item_id: stamp for item, stamp in zip(seen, found, strict=True)}
    planned = plan(items, history, steps, write_identity, stamps)
    if settings.keep_intermediates and planned.resume_points:
        fs, _ = filesystem(settings.output_uri, settings.storage_options)
        points = list(planned.resume_points.items())
        with ThreadPoolExecutor(STAMP_THREADS) as pool:
            kept = pool.map(lambda p: fs.exists(intermediate_uri(settings.output_uri, p[1][1])), points)
            found = {item_id: point for (item_id, point), exists in zip(points, kept, strict=True) if exists}
        planned.resume.update(found)
    return planned
