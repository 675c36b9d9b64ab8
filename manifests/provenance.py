"""The provenance log: one Parquet row per item x stage, written in committed parts.

Layout: ``<output>/_provenance/<run_id>/part-NNNNN.parquet``. Each part is written
atomically, so a crash leaves only whole parts. Columns (all nullable unless said):

=============== ============================================================================
run_id          run that wrote the row (``YYYYMMDDTHHMMSSZ-xxxxxx``, sortable), not null
item_id         manifest item id, not null
source_uri      master's URI (read-only)
source_sha256   sha256 of the master's bytes
stage           ``read``, a restoration stage (``assess`` ... ``colorize``) or ``write``
stage_index     position of the stage in this run's pipeline (0 = read)
model_id        ``family/name@version`` of what ran (``patina/read@1``, ``patina/write@1`` for reading and writing)
model_sha256    sha256 of the weights; null for operations without weights
params          JSON of the parameters that shaped the output (they enter the chain key)
decisions       JSON of what the stage found and decided (routing, measurements)
chain_key       hash of source sha256 + every stage's model, weights and params up to here
status          ``ok`` | ``skipped`` (not applied: routing, or an earlier stage failed) | ``failed``
error_type      exception class of a failure
error_message   what went wrong, for a person
output_uri      the derivative written for this item (set on every row of a written item)
output_sha256   sha256 of the derivative's bytes
started_at      UTC timestamp, microseconds
duration_s      seconds spent on this item in this stage
host            host name of the worker
worker          ``host:pid`` of the process that ran the step (a restarted actor gets a new one)
device          ``cpu`` or ``cuda:N``
patina_version  version of patina that wrote the row
descriptive     JSON of the manifest's title, date, creator, rights, collection and IIIF
                links (``read`` rows only; null on the others and in logs older than it)
=============== ============================================================================

Read it with ``pyarrow.parquet.read_table("<output>/_provenance")`` or DuckDB:
``SELECT * FROM read_parquet('<output>/_provenance/*/*.parquet')``.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from patina.manifests.retry import RetryPolicy, retrying
from patina.manifests.run_lock import OutputNotWritable
from patina.manifests.storage import atomic_write, filesystem, join_uri
from patina.models.atomic_files import TEMPORARY_PREFIX

log = logging.getLogger(__name__)

PROVENANCE_DIR = "_provenance"
REPORTS_DIR = "_reports"  # each run's HTML report (patina.flows.report), named by its run id
UNWRITABLE_ERRNO = frozenset({errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT})
CHAIN_VERSION = "patina-chain/1"

SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("source_uri", pa.string()),
        pa.field("source_sha256", pa.string()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("stage_index", pa.int16()),
        pa.field("model_id", pa.string()),
        pa.field("model_sha256", pa.string()),
        pa.field("params", pa.string()),
        pa.field("decisions", pa.string()),
        pa.field("chain_key", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("output_uri", pa.string()),
        pa.field("output_sha256", pa.string()),
        pa.field("started_at", pa.timestamp("us", tz="UTC")),
        pa.field("duration_s", pa.float64()),
        pa.field("host", pa.string()),
        pa.field("worker", pa.string()),
        pa.field("device", pa.string()),
        pa.field("patina_version", pa.string()),
        pa.field("descriptive", pa.string()),
    ]
)
STATUSES = ("ok", "skipped", "failed")


@dataclass(frozen=True)
class ProvenanceRecord:
    """One provenance row: what happened to one item in one step of one run.

    Its fields are :data:`SCHEMA`'s columns, in order and with their types (a test holds them
    together). Workers build records without ``run_id``; the driver stamps it when it commits
    them (:meth:`stamped`). A status outside :data:`STATUSES` is refused when the record is built.
    """

    run_id: str
    item_id: str
    source_uri: str | None
    source_sha256: str | None
    stage: str
    stage_index: int | None
    model_id: str | None
    model_sha256: str | None
    params: str | None
    decisions: str | None
    chain_key: str | None
    status: str
    error_type: str | None = None
    error_message: str | None = None
    output_uri: str | None = None
    output_sha256: str | None = None
    started_at: datetime | None = None
    duration_s: float | None = None
    host: str | None = None
    worker: str | None = None
    device: str | None = None
    patina_version: str | None = None
    descriptive: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"provenance row of {self.item_id!r}: status {self.status!r} is not one of {STATUSES}")

    def stamped(self, run_id: str) -> ProvenanceRecord:
        return dataclasses.replace(self, run_id=run_id)

    def to_json(self) -> dict[str, Any]:
        """As JSON-able data (``started_at`` in ISO 8601): how records travel inside an item's state."""
        data = {name: getattr(self, name) for name in RECORD_FIELDS}
        if self.started_at is not None:
            data["started_at"] = self.started_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProvenanceRecord:
        started = data.get("started_at")
        return cls(**{"run_id": "", **data, "started_at": datetime.fromisoformat(started) if started else None})


RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ProvenanceRecord))


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def source_chain_key(source_sha256: str) -> str:
    """Chain key of an item before any stage: depends on the source bytes only."""
    return hashlib.sha256(f"{CHAIN_VERSION}\0{source_sha256}".encode()).hexdigest()


def chain_key(previous: str, model_id: str, model_sha256: str | None, params: dict[str, Any]) -> str:
    """Chain key after one more stage.

    Equal keys mean equal outputs: the key covers the source bytes and, for every stage so
    far, its model id, weights sha256 and parameters. Changing one stage changes its key and
    every key after it, and none before.
    """
    return next_key(previous, step_link(model_id, model_sha256, params))


def step_link(model_id: str, model_sha256: str | None, params: dict[str, Any]) -> str:
    """What one stage adds to the chain key (the same for every item a stage runs on: compute it once)."""
    return canonical_json({"model_id": model_id, "model_sha256": model_sha256, "params": params})


def next_key(previous: str, link: str) -> str:
    """The chain key after the stage whose :func:`step_link` is ``link``."""
    return hashlib.sha256(f"{previous}\0{link}".encode()).hexdigest()


def described(rows: Iterable[dict[str, Any] | ProvenanceRecord]) -> dict[str, str]:
    """One item's descriptive fields (title, date, creator, rights, collection, IIIF links) from its
    rows of one run: the ``descriptive`` JSON of its read row; ``{}`` when the manifest gave none."""
    read = next((r for r in rows if _field(r, "stage") == "read"), None)
    text = _field(read, "descriptive") if read is not None else None
    return json.loads(text) if text else {}


def _field(row: dict[str, Any] | ProvenanceRecord, name: str) -> Any:
    """A column's value from a row read back (a dict) or a record being written."""
    return getattr(row, name) if isinstance(row, ProvenanceRecord) else row.get(name)


def provenance_uri(output_uri: str) -> str:
    return join_uri(output_uri, PROVENANCE_DIR)


def report_uri(output_uri: str, run_id: str) -> str:
    """Where run ``run_id``'s report is written under ``output_uri``."""
    return join_uri(output_uri, REPORTS_DIR, f"{run_id}.html")


class ProvenanceWriter:
    """Buffers rows and commits them as whole Parquet parts under the run's folder.

    A part is committed when ``flush_rows`` rows are buffered or ``flush_seconds`` have passed
    since the last commit, and on :meth:`close`.
    """

    def __init__(
        self,
        output_uri: str,
        run_id: str,
        storage_options: dict | None = None,
        flush_rows: int = 5000,
        flush_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.folder = join_uri(provenance_uri(output_uri), run_id)
        self.storage_options = storage_options
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.retry = retry or RetryPolicy()
        self.parts: list[str] = []
        self.rows_written = 0
        self._buffer: list[ProvenanceRecord] = []
        self._last_commit = time.monotonic()

    def add(self, records: Iterable[ProvenanceRecord]) -> None:
        self._buffer.extend(records)
        due = time.monotonic() - self._last_commit >= self.flush_seconds
        if len(self._buffer) >= self.flush_rows or (due and self._buffer):
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        columns = {name: [getattr(r, name) for r in self._buffer] for name in RECORD_FIELDS}
        table = pa.table(columns, schema=SCHEMA)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        uri = join_uri(self.folder, f"part-{len(self.parts):05d}.parquet")
        try:
            retrying(lambda: atomic_write(uri, sink.getvalue(), self.storage_options), self.retry, f"write {uri}")
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno in UNWRITABLE_ERRNO:
                raise OutputNotWritable.because(uri, "the provenance part", exc, mid_run=True) from exc
            raise
        self.parts.append(uri)
        self.rows_written += table.num_rows
        log.debug("committed %d provenance rows to %s", table.num_rows, uri)
        self._buffer.clear()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.flush()


SCAN_ROWS = 16_384
PLANNING_COLUMNS = ("run_id", "item_id", "stage", "stage_index", "status", "chain_key", "source_sha256", "decisions")
VERIFY_COLUMNS = (*PLANNING_COLUMNS, "output_sha256")
"""What planning with ``--verify`` reads: each derivative's recorded sha256 too."""


PART_NAME = re.compile(r"^part-\d+\.parquet$")
"""A committed part's name: ``<output>/_provenance/<run_id>/part-NNNNN.parquet``."""


def provenance_files(
    output_uri: str, storage_options: dict | None = None, run_id: str | None = None
) -> tuple[Any, dict[str, list[str]]]:
    """The log's filesystem and its part files by run id (oldest run first), listed once.

    Anything else under ``_provenance/`` (a stray file, a folder within a run, a part's
    temporary) is not a part: it is skipped, with a warning naming it (temporaries quietly).
    """
    root_uri = provenance_uri(output_uri) if run_id is None else join_uri(provenance_uri(output_uri), run_id)
    fs, root = filesystem(root_uri, storage_options)
    try:
        found = fs.find(root, withdirs=False) if fs.isdir(root) else []
    except FileNotFoundError:
        found = []
    runs: dict[str, list[str]] = defaultdict(list)
    prefix = root.rstrip("/") + "/"
    for path in sorted(found):
        parts = path[len(prefix) :].split("/") if path.startswith(prefix) else [path]
        if parts[-1].startswith(TEMPORARY_PREFIX):
            continue
        if run_id is not None:
            parts = [run_id, *parts]
        if len(parts) == 2 and PART_NAME.match(parts[1]) and not parts[0].startswith((".", "_")):
            runs[parts[0]].append(path)
        else:
            log.warning(
                "provenance: skipping %s: not a provenance part (parts are _provenance/<run_id>/part-NNNNN.parquet)",
                path,
            )
    return fs, dict(sorted(runs.items()))


def _damaged(file: str, exc: BaseException) -> None:
    log.warning(
        "provenance: skipping the damaged part %s (%s: %s); the items it recorded are planned again. "
        "Move it out of _provenance/ (keep it for inspection) to silence this warning",
        file,
        type(exc).__name__,
        exc,
    )


def readable(fs: Any, files: Iterable[str]) -> list[str]:
    """The ``files`` whose Parquet footer reads; each damaged one is named in a warning (:func:`_damaged`)."""
    kept = []
    for file in files:
        try:
            with fs.open(file, "rb") as handle:
                pq.read_metadata(handle)  # reading the footer is the check; nothing of it is kept open
        except (pa.ArrowException, OSError) as exc:
            _damaged(file, exc)
            continue
        kept.append(file)
    return kept


def _dataset(fs: Any, files: list[str]) -> pads.FileSystemDataset:
    return pads.dataset(files, schema=SCHEMA, format="parquet", filesystem=fs)


def scan(
    dataset: pads.FileSystemDataset, columns: Iterable[str] | None = None, damaged: set[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The dataset's rows, file after file, a row group at a time, with its schema (columns an older log lacks: null).

    For long scans with a slow consumer: pyarrow's dataset scanner reads ahead of its consumer
    without bound (611 MB buffered while the planner spilled a 3 M-row run), this holds one batch.
    A damaged file is skipped from where it fails, with a warning naming it, and added to
    ``damaged`` (files already in it are skipped quietly: a second scan warns no more).
    """
    names = list(columns) if columns is not None else dataset.schema.names
    schema = pa.schema([dataset.schema.field(name) for name in names])
    damaged = set() if damaged is None else damaged
    for file in dataset.files:
        if file in damaged:
            continue
        try:
            with dataset.filesystem.open_input_file(file) as handle:
                parquet = pq.ParquetFile(handle)
                present = [name for name in names if name in parquet.schema_arrow.names]
                for batch in parquet.iter_batches(batch_size=SCAN_ROWS, columns=present):
                    arrays = [
                        batch.column(field.name).cast(field.type)
                        if field.name in present
                        else pa.nulls(batch.num_rows, field.type)
                        for field in schema
                    ]
                    yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        except (pa.ArrowException, OSError) as exc:
            damaged.add(file)
            _damaged(file, exc)


def latest_attempt_parts(
    output_uri: str, storage_options: dict | None = None, columns: tuple[str, ...] = PLANNING_COLUMNS
) -> Iterator[pa.Table]:
    """Each item's rows from the latest run that processed it (``columns``: the planner's), a batch at a time.

    Planning costs about the same after a year of nightly runs as after one: the log is listed
    once; runs are taken newest first (folders are named by sortable run ids), and of each only
    the item ids of its read rows are read (every attempt, resumed ones too, records its read
    step); the planner's columns are then read from that run, a batch at a time, for the items
    not seen in a newer one. Memory holds one run's item ids and one set of the ids seen.
    Stray and damaged files are skipped with a warning naming them (:func:`provenance_files`, :func:`scan`).
    """
    fs, files_of = provenance_files(output_uri, storage_options)
    seen: set[str] = set()
    damaged: set[str] = set()
    for run_id in sorted(files_of, reverse=True):
        run = _dataset(fs, files_of[run_id])
        latest, older = [], 0  # this run's items not seen in a newer run; how many were
        for batch in scan(run, ["item_id", "stage"], damaged):
            for item_id in batch.filter(pc.equal(batch.column(1), "read")).column(0).to_pylist():
                if item_id in seen:
                    older += 1
                else:
                    seen.add(item_id)
                    latest.append(item_id)
        if not latest:
            continue
        wanted = pa.array(latest, pa.string()) if older else None
        del latest
        for batch in scan(run, columns, damaged):
            if wanted is not None:
                batch = batch.filter(pc.is_in(batch.column(1), value_set=wanted))
            if batch.num_rows:
                yield pa.Table.from_batches([batch])
    pa.default_memory_pool().release_unused()  # the reads' buffers: give them back, a nightly driver lives long


def read_latest_attempts(output_uri: str, storage_options: dict | None = None) -> pa.Table:
    """:func:`latest_attempt_parts` as one table (empty, with the planner's columns, if there is no log)."""
    parts = list(latest_attempt_parts(output_uri, storage_options))
    return pa.concat_tables(parts) if parts else SCHEMA.empty_table().select(list(PLANNING_COLUMNS))


def run_ids(output_uri: str, storage_options: dict | None = None) -> list[str]:
    """The runs with provenance parts under ``output_uri``, oldest first (their folders' names)."""
    return list(provenance_files(output_uri, storage_options)[1])


def run_dataset(output_uri: str, run_id: str, storage_options: dict | None = None) -> pads.Dataset | None:
    """The readable provenance of one run as a dataset to scan (only its folder is listed); None if it has none."""
    fs, files_of = provenance_files(output_uri, storage_options, run_id)
    files = readable(fs, files_of.get(run_id, []))
    return _dataset(fs, files) if files else None


def read_provenance(output_uri: str, storage_options: dict | None = None) -> pa.Table:
    """Every committed, readable provenance row under ``output_uri`` (all runs); empty table if none."""
    fs, files_of = provenance_files(output_uri, storage_options)
    files = readable(fs, [file for files in files_of.values() for file in files])
    if not files:
        return SCHEMA.empty_table()
    # File by file (scan), not the dataset scanner: its read-ahead threads over a Python
    # filesystem (s3fs) can outlive the interpreter and abort it at exit (apache/arrow#39162)
    return pa.Table.from_batches(list(scan(_dataset(fs, files))), schema=SCHEMA)
