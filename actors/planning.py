"""Plan a run against the provenance already under its output (glue around manifests/planner.py).

The manifest and each item's latest attempt stream into a local spill partitioned by item-id
bucket (:mod:`patina.manifests.buckets`) and are planned one group of buckets at a time, so the
driver's memory does not grow with the collection. The rows to run are written as Parquet parts
under ``<output>/_planned/<run_id>/``, which the pipeline puts in Ray's object store a part at a
time; the driver keeps only the counts (and, when asked, every item's class).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from patina.actors.intermediates import intermediate_uri
from patina.actors.io_tasks import write_step
from patina.actors.settings import RunSettings, stage_identity
from patina.manifests.buckets import BucketSpill, groups, spill_folder
from patina.manifests.items import Item
from patina.manifests.locations import OutputInsideMasters, check_output_location
from patina.manifests.planner import Derivative, LatestAttempts, Plan, StepIdentity, plan
from patina.manifests.provenance import (
    PLANNING_COLUMNS,
    SCHEMA,
    VERIFY_COLUMNS,
    canonical_json,
    latest_attempt_parts,
    step_link,
)
from patina.manifests.readers import check_unique
from patina.manifests.retry import retrying
from patina.manifests.storage import (
    atomic_write,
    filesystem,
    is_local,
    join_uri,
    object_facts,
    output_key,
    source_stamps,
)
from patina.models.codecs import OUTPUT_FORMATS, output_format

log = logging.getLogger(__name__)

STAMP_THREADS = 32  # concurrent metadata requests (stat / HEAD) when planning
GROUP_ROWS = 50_000  # manifest and history rows planned at a time (a group of buckets holds about this many)
SPILL_BATCH = 20_000  # manifest items gathered before they are spilled
PLANNED_DIR = "_planned"

ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("source_uri", pa.string()),
        ("checksum", pa.string()),  # "algo:hex" or ""
        ("descriptive", pa.string()),  # canonical JSON of Item.descriptive(), or ""
        ("where", pa.string()),  # the manifest line, for errors
    ]
)
ROWS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("source_uri", pa.string()),
        ("checksum", pa.string()),
        ("resume_index", pa.int64()),
        ("resume_uri", pa.string()),
        ("descriptive", pa.string()),
    ]
)
""":class:`~patina.actors.item_state.PlannedRow` as Arrow: what the read step gets per item."""


@dataclass(frozen=True)
class PlannedRows:
    """The planned rows of a run: Parquet parts in ``uri`` (a folder), ``count`` rows in all."""

    uri: str
    count: int


@dataclass(frozen=True)
class RunPlan:
    """What a run will do: counts (None when every item runs), its rows, and every item's class if asked."""

    counts: dict[str, Any] | None
    total: int  # items in the manifest
    to_run: int
    rows: PlannedRows | None = None  # written when asked and something is to run
    items: Plan | None = None  # every item's class (``patina plan --json``, tests)


def items_table(entries: Iterable[tuple[str, Item]]) -> pa.Table:
    """Items (with where the manifest lists them) as :data:`ITEMS_SCHEMA` rows."""
    columns: dict[str, list[str]] = {name: [] for name in ITEMS_SCHEMA.names}
    for where, item in entries:
        columns["item_id"].append(item.item_id)
        columns["source_uri"].append(item.source_uri)
        columns["checksum"].append(":".join(item.checksum) if item.checksum else "")
        columns["descriptive"].append(canonical_json(described) if (described := item.descriptive()) else "")
        columns["where"].append(where)
    return pa.table(columns, schema=ITEMS_SCHEMA)


def planned_rows(items: pa.Table, resume: dict[str, tuple[int, str]], output_uri: str) -> pa.Table:
    """:data:`ROWS_SCHEMA` rows of ``items``: each starts at its resume point (a kept intermediate) or its master."""
    points = [resume.get(item_id, (0, "")) for item_id in items["item_id"].to_pylist()]
    return pa.table(
        {
            "item_id": items["item_id"],
            "source_uri": items["source_uri"],
            "checksum": items["checksum"],
            "resume_index": pa.array([index for index, _ in points], pa.int64()),
            "resume_uri": pa.array(
                [intermediate_uri(output_uri, key) if key else "" for _, key in points], pa.string()
            ),
            "descriptive": items["descriptive"],
        },
        schema=ROWS_SCHEMA,
    )


def planned_uri(output_uri: str, run_id: str) -> str:
    return join_uri(output_uri, PLANNED_DIR, run_id)


def remove_planned(rows: PlannedRows | None, storage_options: dict | None = None) -> None:
    """Delete a run's planned rows (they are the run's input, not its record: provenance is)."""
    if rows is None:
        return
    fs, path = filesystem(rows.uri, storage_options)
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass
    except OSError as exc:  # the output became unwritable: the next run that plans removes them
        log.warning("could not remove the planned rows %s (%s); the next run removes them", rows.uri, exc)
        return
    if is_local(fs):  # no empty _planned folder left in the output (object stores have no folders)
        with contextlib.suppress(OSError):  # not empty, or gone
            os.rmdir(os.path.dirname(path.rstrip("/")))


def spill_manifest(
    entries: Iterable[tuple[str, Item]], output_uri: str, folder: Path, storage_options: dict | None = None
) -> BucketSpill:
    """Read the manifest's ``entries`` (``(where, item)``, :func:`~patina.manifests.readers.iter_manifest`)
    into a bucket spill under ``folder``, checking every item: ids unique (per bucket, where all copies
    of an id fall), and masters and output apart by their resolved locations (raised after the manifest's own errors).
    """
    spill = BucketSpill(folder, "items", ITEMS_SCHEMA)
    batch: list[tuple[str, Item]] = []
    misplaced: OutputInsideMasters | None = None
    for entry in itertools.chain(entries, [None]):
        if entry is not None:
            batch.append(entry)
            if len(batch) < SPILL_BATCH:
                continue
        try:
            check_output_location(output_uri, (item.source_uri for _, item in batch), storage_options)
        except OutputInsideMasters as exc:
            misplaced = misplaced or exc
        spill.add(items_table(batch))
        batch = []
    for buckets in groups(spill.rows_per_bucket, GROUP_ROWS):
        _check_unique(spill.read(buckets))
    if misplaced is not None:
        raise misplaced
    return spill


def plan_spilled(
    spilled: BucketSpill,
    settings: RunSettings,
    *,
    everything: bool = False,
    write: bool = True,
    keep_items: bool = False,
    verify: bool = False,
    group_rows: int = GROUP_ROWS,
) -> RunPlan:
    """What running the spilled manifest's items with ``settings`` must do, given the provenance under its output.

    ``everything``: every item runs, whatever the log says. ``write``: write the rows to run
    under ``<output>/_planned/<run_id>/`` (:class:`PlannedRows`). ``keep_items``: also return
    every item's class (memory grows with the collection: for ``patina plan --json`` and tests).
    Each unchanged item's derivative must still exist with the size it was written with; ``verify``:
    and the same sha256 (every derivative is read).
    Each item's latest attempt is spilled beside the manifest (in ``spilled``'s folder) first.
    """
    columns = VERIFY_COLUMNS if verify else PLANNING_COLUMNS  # recorded sha256s only when they are compared
    history = BucketSpill(spilled.folder, "latest", pa.schema([SCHEMA.field(name) for name in columns]))
    if not everything:
        for part in latest_attempt_parts(settings.output_uri, settings.storage_options, columns):
            history.add(part)
    planner = _GroupPlanner(settings, everything, verify)
    folder_uri = planned_uri(settings.output_uri, settings.run_id)
    if write:
        remove_stale_planned(settings.output_uri, settings.run_id, settings.storage_options)
    try:
        for number, buckets in enumerate(groups(spilled.rows_per_bucket + history.rows_per_bucket, group_rows)):
            rows = planner.plan(spilled.read(buckets), history.read(buckets), keep_items)
            if write and rows.num_rows:
                _write_part(join_uri(folder_uri, f"part-{number:05d}.parquet"), rows, settings)
    except BaseException:
        if write:
            remove_planned(PlannedRows(folder_uri, 0), settings.storage_options)
        raise
    total = int(spilled.rows_per_bucket.sum())
    rows_out = PlannedRows(folder_uri, planner.to_run) if write and planner.to_run else None
    counts = None if everything else planner.counts()
    return RunPlan(counts, total, planner.to_run, rows_out, planner.items if keep_items else None)


def remove_stale_planned(output_uri: str, run_id: str, storage_options: dict | None = None) -> int:
    """Delete planned rows left by runs that died (kill -9, a lost node); call it holding the run lock.

    Only the lock's holder plans and runs, so every other run's folder under ``_planned/`` is stale.
    """
    fs, path = filesystem(join_uri(output_uri, PLANNED_DIR), storage_options)
    try:
        entries = fs.ls(path, detail=False, refresh=True)
    except FileNotFoundError:
        return 0
    stale = [entry for entry in entries if entry.rstrip("/").rsplit("/", 1)[-1] != run_id]
    for entry in stale:
        log.info("removing the planned rows of a run that did not finish: %s", entry)
        fs.rm(entry, recursive=True)
    return len(stale)


def plan_run(entries: Iterable[tuple[str, Item]], settings: RunSettings, **options: Any) -> RunPlan:
    """:func:`spill_manifest` then :func:`plan_spilled` (its ``options``), spilling to a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="patina-plan-", dir=spill_folder()) as name:
        return plan_spilled(
            spill_manifest(entries, settings.output_uri, Path(name), settings.storage_options), settings, **options
        )


def _write_part(uri: str, rows: pa.Table, settings: RunSettings) -> None:
    sink = io.BytesIO()
    pq.write_table(rows, sink, compression="zstd")
    retrying(lambda: atomic_write(uri, sink.getvalue(), settings.storage_options), settings.retry, f"write {uri}")


class _GroupPlanner:
    """Plans one group of buckets at a time and adds up what it found."""

    def __init__(self, settings: RunSettings, everything: bool, verify: bool = False) -> None:
        self.settings = settings
        self.everything = everything
        self.verify = verify
        self.steps: list[StepIdentity] = [(s.stage, *stage_identity(s)) for s in settings.stages]
        self.tally: Counter[str] = Counter()  # Plan.counts() of every group, added up
        self.changed: Counter[str] = Counter()
        self.to_run = 0
        self.items = Plan()
        self._write_links: dict[str, tuple[str, str]] = {}
        self._extensions: dict[str, str] = {}

    def write_link(self, source_format: str) -> tuple[str, str]:
        """The write step's stage and link for a master of ``source_format`` (one per format, not per item)."""
        if source_format not in self._write_links:
            step = write_step(output_format(source_format, self.settings.output_format), self.settings)
            self._write_links[source_format] = step.stage, step_link(step.model_id, step.model_sha256, step.params)
        return self._write_links[source_format]

    def plan(self, items: pa.Table, history: pa.Table, keep_items: bool) -> pa.Table:
        """The rows to run of one group (items and their history share the group's buckets)."""
        if self.everything:
            self.to_run += items.num_rows
            return planned_rows(items, {}, self.settings.output_uri)
        found = self._classify(items, history)
        counts = found.counts()
        self.changed.update(counts.pop("changed"))
        self.tally.update(counts)
        if keep_items:
            self.items = _merged(self.items, found)
        to_run = items.filter(pc.is_in(items["item_id"], pa.array(sorted(found.to_run), pa.string())))
        self.to_run += to_run.num_rows
        return planned_rows(to_run, found.resume, self.settings.output_uri)

    def _classify(self, items: pa.Table, history: pa.Table) -> Plan:
        latest = LatestAttempts(history)
        listed = [
            Item(item_id, source, tuple(checksum.split(":", 1)) if checksum else None)
            for item_id, source, checksum in zip(*(items[c].to_pylist() for c in ITEMS_SCHEMA.names[:3]), strict=True)
        ]
        known = [item for item in listed if item.item_id in latest]  # new items need no stamp
        by_uri = source_stamps({item.source_uri for item in known}, self.settings.storage_options, STAMP_THREADS)
        stamps = {item.item_id: by_uri[item.source_uri] for item in known}
        found = plan(listed, latest, self.steps, self.write_link, stamps, self._derivatives(known, latest))
        if not (self.settings.keep_intermediates and found.resume_points):
            return found
        fs, _ = filesystem(self.settings.output_uri, self.settings.storage_options)
        points = list(found.resume_points.items())
        with ThreadPoolExecutor(STAMP_THREADS) as pool:
            kept = pool.map(lambda p: fs.exists(intermediate_uri(self.settings.output_uri, p[1][1])), points)
            resume = {item_id: point for (item_id, point), exists in zip(points, kept, strict=True) if exists}
        return dataclasses.replace(found, resume=resume)

    def derivative_uri(self, item_id: str, source_format: str) -> str:
        """Where the write step puts an item's derivative (as :func:`~patina.actors.io_tasks.write_item` does)."""
        if source_format not in self._extensions:
            fmt = output_format(source_format, self.settings.output_format)
            self._extensions[source_format] = OUTPUT_FORMATS[fmt]
        return join_uri(self.settings.output_uri, output_key(item_id) + self._extensions[source_format])

    def _derivatives(self, known: list[Item], latest: LatestAttempts) -> dict[str, Derivative]:
        """Each finished item's derivative as it is now: its size (a stat each locally, a listing of the output
        folder on object stores), and its sha256 when verifying. Unchanged items' derivatives are where this
        output and format put them (another format or output changes the chain key: such items rerun)."""
        written = {
            item.item_id: self.derivative_uri(item.item_id, attempt.source_format)
            for item in known
            if (attempt := latest.attempts[item.item_id]).finished
        }
        options = self.settings.storage_options
        sizes = object_facts(written.values(), lambda info: info.get("size"), options, STAMP_THREADS)
        hashes: dict[str, str] = {}
        if self.verify:
            present = [uri for uri, size in sizes.items() if size is not None]
            with ThreadPoolExecutor(STAMP_THREADS) as pool:
                hashes = dict(zip(present, pool.map(lambda uri: _sha256_of(uri, options), present), strict=True))
        return {
            item_id: None if (size := sizes[uri]) is None else (size, hashes.get(uri))
            for item_id, uri in written.items()
        }

    def counts(self) -> dict[str, Any]:
        """:meth:`Plan.counts` of the whole manifest."""
        return {name: dict(self.changed) if name == "changed" else self.tally[name] for name in Plan().counts()}


def _sha256_of(uri: str, storage_options: dict | None) -> str:
    """sha256 of a derivative's bytes, read a block at a time ("" if it cannot be read: it is made again)."""
    fs, path = filesystem(uri, storage_options)
    digest = hashlib.sha256()
    try:
        with fs.open(path, "rb") as handle:
            while block := handle.read(8 * 2**20):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def _check_unique(items: pa.Table) -> None:
    """Ids are unique (duplicates share a bucket, so a group sees every copy of its ids)."""
    if items.num_rows != pc.count_distinct(items["item_id"]).as_py():
        check_unique(zip(items["where"].to_pylist(), items["item_id"].to_pylist(), strict=True))


def _merged(a: Plan, b: Plan) -> Plan:
    """Two groups' plans as one (lists joined, maps merged: the groups' ids are disjoint)."""
    return Plan(
        **{
            f.name: getattr(a, f.name) + getattr(b, f.name)
            if isinstance(getattr(a, f.name), list)
            else {**getattr(a, f.name), **getattr(b, f.name)}
            for f in dataclasses.fields(Plan)
        }
    )
