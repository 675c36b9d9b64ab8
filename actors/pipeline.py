"""Ray Data pipeline assembly: read -> one actor pool per stage -> write, streamed.

The driver consumes finished items as they come and hands their provenance records to a
:class:`~patina.manifests.provenance.ProvenanceWriter`, so memory stays bounded and a crash
loses only the items in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from patina.actors.io_tasks import read_item, write_item
from patina.actors.item_state import ItemState
from patina.actors.planning import PlannedRows, items_table, planned_rows
from patina.actors.settings import AUTO_POOL, CPU_POOL, Resources, RunSettings, StageSettings
from patina.actors.stage_actor import StageActor
from patina.manifests.items import Item
from patina.manifests.provenance import ProvenanceWriter, provenance_uri
from patina.manifests.storage import filesystem, remove_temporaries
from patina.models.registry import entry
from patina.models.weights import WeightsError, pull

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, int], None]  # (done, total, failed)


@dataclass(frozen=True)
class Failure:
    item_id: str
    stage: str
    error_type: str
    error_message: str


@dataclass
class RunSummary:
    run_id: str
    output_uri: str
    provenance_uri: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    duration_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    plan: dict[str, Any] | None = None  # what the planner found (None: every item was run)
    report_uri: str | None = None

    @property
    def status(self) -> str:
        """``completed`` (all items ok), ``partial`` (some failed) or ``failed`` (none ok)."""
        if self.failed == 0:
            return "completed"
        return "failed" if self.succeeded == 0 else "partial"


class GpuUnavailable(RuntimeError):
    """A stage asks for a GPU the Ray cluster does not have."""


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the Ray instance already initialised, join ``address``, or start a local one."""
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        kwargs["address"] = address
    else:  # "local": a new instance, even where a `ray start` cluster left its address behind
        kwargs["address"] = "local"
        if num_cpus:
            kwargs["num_cpus"] = num_cpus
    handler = signal.getsignal(signal.SIGTERM)
    ray.init(**kwargs)  # Ray sets a SIGTERM handler of its own (sys.exit): a caller's handler is kept
    if callable(handler) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
    resources = ray.cluster_resources()
    log.info(
        "Ray: %s, %d node(s), %g CPU, %g GPU",
        f"joined the cluster at {address}" if address else "started a local instance",
        sum(1 for node in ray.nodes() if node["Alive"]),
        resources.get("CPU", 0),
        resources.get("GPU", 0),
    )
    try:
        yield
    finally:
        ray.shutdown()


def place_stages(settings: RunSettings, available_gpus: float | None = None) -> RunSettings:
    """Check GPU requests against the cluster before any actor exists (one asking for a missing GPU waits forever).

    A stage asking for a GPU on a cluster without one fails fast with :class:`GpuUnavailable`,
    or, with ``gpu_fallback = "cpu"``, runs on the CPU (logged). Returns the settings to run.
    """
    if available_gpus is None:
        available_gpus = ray.cluster_resources().get("GPU", 0.0)
    placed = []
    automatic = sum(stage.resources.num_gpus is None for stage in settings.stages)
    # Network stages left automatic share the GPUs: each actor gets an equal share (a whole GPU at most),
    # so every such pool can start even on a single GPU (two pools each asking for 1 of 1 would wait forever).
    # Without GPUs they join the shared CPU pool: one actor per CPU runs the whole chain on its item, and
    # no pixels cross processes between stages.
    share = min(1.0, available_gpus / automatic) if automatic else 0.0
    for stage in settings.stages:
        res = stage.resources
        if res.num_gpus is None:
            pool = res.pool if res.pool != AUTO_POOL else (stage.stage if share > 0 else CPU_POOL)
            placed.append(dataclasses.replace(stage, resources=dataclasses.replace(res, num_gpus=share, pool=pool)))
            continue
        if res.num_gpus > 0 and available_gpus <= 0:
            if res.gpu_fallback != "cpu":
                raise GpuUnavailable(
                    f"stage {stage.stage!r} ({stage.model_id}) asks for {res.num_gpus} GPU per actor, but the Ray "
                    'cluster has no GPU; set its num_gpus to 0, or gpu_fallback = "cpu", to run it on the CPU'
                )
            log.warning("stage %s: the Ray cluster has no GPU, running %s on the CPU", stage.stage, stage.model_id)
            stage = dataclasses.replace(stage, resources=dataclasses.replace(res, num_gpus=0.0))
        placed.append(stage)
    return dataclasses.replace(settings, stages=tuple(placed))


def fetch_weights(settings: RunSettings) -> None:
    """Download (once, verified) and check every stage's weights in the driver, before any actor starts.

    A missing or corrupt file then fails the run with the stage and the cause named, instead of
    failing every actor of the stage. Actors on other nodes fetch into their own cache the same way.
    """
    for stage in settings.stages:
        registered = entry(stage.model_id)
        for spec in (registered.spec, *registered.implementation.auxiliary_weights()):
            if spec.weights_uri is None:
                continue
            try:
                pull(spec)
            except WeightsError as exc:
                raise WeightsError(f"stage {stage.stage!r}: {exc}") from exc


def pool_groups(stages: Sequence[StageSettings]) -> list[tuple[StageSettings, ...]]:
    """Adjacent stages with equal resources (pool name included) form one actor pool."""
    groups: list[list[StageSettings]] = []
    for stage in stages:
        if groups and groups[-1][0].resources == stage.resources:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    return [tuple(group) for group in groups]


ACTOR_BASE_MB = 200
"""An actor's own resident memory before any stage: Ray's worker with patina's imports (196 MB measured)."""

UNMEASURED_MB = {"classical": 150, "network": 1024}
"""What a pool assumes for a model whose spec has no measured ``memory_mb``."""


def pool_memory_mb(group: Sequence[StageSettings]) -> int:
    """Ray ``memory`` request of one actor of a pool, from the measured ``memory_mb`` of its models.

    Stages run one after another, so only the largest peaks at a time; the others keep their
    weights and some allocator pages (24% of their figures in the default chain measured in one
    process by benchmarks/actor_memory.py); half of theirs is reserved, for headroom.
    """
    figures = []
    for stage in group:
        spec = entry(stage.model_id).spec
        kind = "classical" if spec.architecture == "classical" else "network"
        figures.append(spec.memory_mb or UNMEASURED_MB[kind])
    figures.sort()
    return ACTOR_BASE_MB + figures[-1] + sum(figures[:-1]) // 2


def pool_size(res: Resources, cluster: dict[str, float], memory_bytes: int = 0) -> int:
    """Most actors of a pool: as configured, else one per CPU of the cluster (per GPU share for GPU pools),
    and no more than the cluster's memory holds at ``memory_bytes`` each."""
    if res.max_actors is not None:
        return res.max_actors
    if res.num_gpus > 0:
        fits = int(cluster.get("GPU", 0) // res.num_gpus)
    else:
        fits = int(cluster.get("CPU", 1))
    if memory_bytes and cluster.get("memory"):
        fits = min(fits, int(cluster["memory"] // memory_bytes))
    return max(res.min_actors, fits, 1)


BLOCKS = 10_000
"""Most input blocks of a run: a block of planned rows is the unit Ray Data hands a read task or an actor."""


def _read_part(fs: Any, file: str) -> pa.Table:
    """One Parquet part, read whole through ``fs`` (no dataset scanner: see ``read_provenance``)."""
    with fs.open(file, "rb") as handle:
        return pq.ParquetFile(handle).read()


def input_dataset(source: Sequence[Item] | PlannedRows, settings: RunSettings) -> ray.data.Dataset:
    """The planned rows as blocks in the object store: a run's Parquet parts, or rows made here from items.

    Blocks of ``ceil(n / BLOCKS)`` rows (1 up to 10,000 items), so that reads and stages spread over
    every worker. The parts are read one at a time and their blocks put in Ray's object store as
    they come, so the driver never holds every row at once (the store does: a few hundred bytes
    per item, spilled to disk by Ray if it must).
    """
    if isinstance(source, PlannedRows):
        fs, path = filesystem(source.uri, settings.storage_options)
        count, parts = source.count, (_read_part(fs, f) for f in sorted(fs.find(path)))
    else:
        rows = planned_rows(items_table(("", item) for item in source), {}, settings.output_uri)
        count, parts = rows.num_rows, iter([rows])
    per_block = max(1, -(-count // BLOCKS))
    datasets = [  # from_blocks: the blocks' metadata is taken here, not by a remote task per block
        ray.data.from_blocks([part.slice(start, per_block) for start in range(0, part.num_rows, per_block)])
        for part in parts
    ]
    return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]


def build_dataset(source: Sequence[Item] | PlannedRows, settings: RunSettings) -> ray.data.Dataset:
    """The lazy Ray Data dataset of the whole pipeline (nothing runs until consumed)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI owns the terminal
    ds = input_dataset(source, settings)
    index, cluster = 1, ray.cluster_resources()
    groups = pool_groups(settings.stages)
    # A memory request from measurement lets Ray place actors by memory (and answers Ray Data's
    # "uses N MiB per worker but requests 0" warning); a configured memory_mb wins.
    memories = [(group[0].resources.memory_mb or pool_memory_mb(group)) * 2**20 for group in groups]
    # The read asks for what a CPU first pool asks, so that Ray Data fuses it into that pool's actors
    # (equal remote args): the decoded pixels then never cross processes.
    read_memory = {"memory": memories[0]} if groups and groups[0][0].resources.num_gpus == 0 else {}
    ds = ds.map(read_item, fn_kwargs={"settings": settings}, num_cpus=settings.io_num_cpus, **read_memory)
    for position, group in enumerate(groups):
        res, memory = group[0].resources, memories[position]
        extra: dict[str, Any] = {"memory": memory}
        if res.num_gpus > 0:
            extra["num_gpus"] = res.num_gpus
        # The last pool, when it runs on CPUs, also writes: its pixels need not travel to a write task.
        write = position == len(groups) - 1 and res.num_gpus == 0
        ds = ds.map_batches(
            StageActor,
            fn_constructor_kwargs={"settings": group, "stage_index": index, "run": settings, "write": write},
            compute=ray.data.ActorPoolStrategy(min_size=res.min_actors, max_size=pool_size(res, cluster, memory)),
            batch_size=res.batch_size,
            batch_format="numpy",
            zero_copy_batch=True,  # StageActor never mutates its input batch
            num_cpus=res.num_cpus,
            **extra,
        )
        index += len(group)
        if write:
            return ds
    return ds.map(write_item, fn_kwargs={"settings": settings}, num_cpus=settings.io_num_cpus)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held for the block and delivered, to the handlers they had, once it ends.

    So a stop never lands halfway through committing an item (its provenance buffered, its
    progress not yet counted). Outside the main thread, where handlers cannot be set, a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    saved = {signum: signal.signal(signum, lambda signum, frame: held.append(signum)) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        for signum in held[:1]:
            signal.raise_signal(signum)


STOP_GRACE_S = 5.0
"""After a stop signal, how long the driver still takes in items that finish (their provenance is committed)."""

_END = object()


class StreamedRows:
    """A dataset's rows consumed by a thread of their own, so that a signal raised in the main thread
    interrupts the wait for a row, never Ray Data's iterator: after it, :meth:`drain` can still take in
    the items that are finishing (their derivatives are written: their provenance must be committed)."""

    def __init__(self, dataset: ray.data.Dataset) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=64)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._consume, args=(dataset,), name="patina-rows", daemon=True)
        self._thread.start()

    def _put(self, value: Any) -> None:
        while not self._closed.is_set():
            try:
                return self._queue.put(value, timeout=0.5)
            except queue.Full:
                continue

    def _consume(self, dataset: ray.data.Dataset) -> None:
        try:
            for row in dataset.iter_rows():
                self._put(row)
                if self._closed.is_set():
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(exc)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            value = self._queue.get()
            if value is _END:
                return
            if isinstance(value, BaseException):
                raise value
            yield value

    def drain(self, take: Callable[[dict[str, Any]], None], seconds: float) -> int:
        """Hand ``take`` every row that arrives within ``seconds`` (or until the rows end); how many."""
        deadline, taken = time.monotonic() + seconds, 0
        while (left := deadline - time.monotonic()) > 0:
            try:
                value = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if value is _END or isinstance(value, BaseException):
                break
            take(value)
            taken += 1
        return taken

    def close(self) -> None:
        """Stop consuming (the thread ends at its next row; Ray's shutdown ends what it waits for)."""
        self._closed.set()


MAX_FAILURES_LISTED = 1000
"""Failures a summary lists (every one is counted, and every one is in the provenance and the report)."""


def run_pipeline(
    source: Sequence[Item] | PlannedRows, settings: RunSettings, progress: ProgressCallback | None = None
) -> RunSummary:
    """Run every planned row (or every item) through the pipeline; returns the run's summary.

    Requires a Ray session (see :func:`ray_session`).
    """
    settings = place_stages(settings)
    fetch_weights(settings)
    started, started_wall = time.monotonic(), time.time()
    total = source.count if isinstance(source, PlannedRows) else len(source)
    summary = RunSummary(settings.run_id, settings.output_uri, provenance_uri(settings.output_uri), total=total)
    writer = ProvenanceWriter(
        settings.output_uri,
        settings.run_id,
        settings.storage_options,
        settings.provenance_flush_rows,
        settings.provenance_flush_seconds,
        settings.retry,
    )
    if progress is not None:
        progress(0, summary.total, 0)

    def commit(row: dict[str, Any]) -> None:
        with signals_deferred():  # a stop signal lands between items: the count said is the count committed
            take(row)

    def take(row: dict[str, Any]) -> None:
        state = ItemState.from_json(row["state"])
        writer.add(record.stamped(settings.run_id) for record in state.records)
        if state.failed:
            summary.failed += 1
            bad = next(r for r in state.records if r.status == "failed")
            if len(summary.failures) < MAX_FAILURES_LISTED:
                summary.failures.append(Failure(row["item_id"], bad.stage, bad.error_type, bad.error_message))
        else:
            summary.succeeded += 1
        if progress is not None:
            progress(summary.succeeded + summary.failed, summary.total, summary.failed)

    rows = StreamedRows(build_dataset(source, settings))
    try:
        for row in rows:
            commit(row)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # asked to stop (a signal): take in what is finishing, briefly
            drained = rows.drain(commit, STOP_GRACE_S)
            log.warning("stopping: %d more finished item(s) committed in the %g s grace", drained, STOP_GRACE_S)
        raise
    finally:
        rows.close()
        writer.close()  # every item handed back so far: committed, however the loop ended
        if removed := remove_temporaries(settings.output_uri, started_wall - 1.0, settings.storage_options):
            log.warning("removed %d temporary file(s) left by workers that died mid-write", removed)
        summary.duration_s = time.monotonic() - started
    log.info(
        "run %s: %d ok, %d failed in %.1f s", settings.run_id, summary.succeeded, summary.failed, summary.duration_s
    )
    return summary


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    """The summary as JSON-able data (for artifacts and machine-readable output)."""
    data = json.loads(json.dumps(summary, default=lambda o: o.__dict__))
    data["status"] = summary.status
    return data
