"""Tables spilled to local disk by item-id bucket, read back a group of buckets at a time.

Planning a run joins the manifest with each item's latest attempt from the provenance log.
Holding either side whole makes the driver's memory grow with the collection; instead both are
written, as they stream in, to local Arrow files partitioned by a stable hash of the item id
(:func:`bucket_of`), and planned one group of buckets at a time: an item and its history always
fall in the same bucket, so each group is planned on its own, and memory holds one group.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

BUCKETS = 256


def bucket_of(item_ids: pa.Array | pa.ChunkedArray | list[str]) -> np.ndarray:
    """Each id's bucket (0 .. BUCKETS - 1): CRC-32 of its UTF-8 bytes, the same in every process."""
    ids = item_ids.to_pylist() if isinstance(item_ids, pa.Array | pa.ChunkedArray) else item_ids
    return np.fromiter((zlib.crc32(i.encode()) % BUCKETS for i in ids), dtype=np.int64, count=len(ids))


class BucketSpill:
    """Append tables (each with an ``item_id`` column); read back the rows of a range of buckets.

    Each :meth:`add` writes one Arrow IPC file under ``folder`` holding one record batch per
    bucket; :meth:`read` reads from each file only the batches of the buckets asked for, so
    memory holds only those rows.
    """

    def __init__(self, folder: Path, name: str, schema: pa.Schema) -> None:
        self.folder = folder
        self.name = name
        self.schema = schema
        self.files: list[Path] = []
        self.rows_per_bucket = np.zeros(BUCKETS, dtype=np.int64)

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        buckets = bucket_of(table["item_id"])
        order = np.argsort(buckets, kind="stable")
        counts = np.bincount(buckets, minlength=BUCKETS)
        ordered = table.take(pa.array(order)).combine_chunks()
        offsets = np.concatenate([[0], np.cumsum(counts)])
        path = self.folder / f"{self.name}-{len(self.files):05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, self.schema) as writer:
            for bucket in range(BUCKETS):
                part = ordered.slice(int(offsets[bucket]), int(counts[bucket]))
                writer.write_batch(
                    pa.RecordBatch.from_arrays([column.combine_chunks() for column in part.columns], schema=self.schema)
                )
        self.files.append(path)
        self.rows_per_bucket += counts

    def read(self, buckets: range) -> pa.Table:
        """The rows of ``buckets`` from every file (read, not mapped: the memory is the table's own)."""
        batches = []
        for path in self.files:
            with pa.OSFile(str(path), "rb") as source:
                reader = ipc.open_file(source)
                batches.extend(reader.get_batch(b) for b in buckets)
        return pa.Table.from_batches(batches, schema=self.schema)


def groups(rows_per_bucket: np.ndarray, target_rows: int) -> Iterator[range]:
    """Consecutive bucket ranges of about ``target_rows`` rows each (a bucket is never split)."""
    start, total = 0, 0
    for bucket, rows in enumerate(rows_per_bucket):
        total += int(rows)
        if total >= target_rows:
            yield range(start, bucket + 1)
            start, total = bucket + 1, 0
    if start < len(rows_per_bucket):
        yield range(start, len(rows_per_bucket))


def spill_folder() -> Path:
    """Where a driver spills: ``PATINA_SPILL_DIR`` or the system's temporary folder (local disk)."""
    return Path(os.environ.get("PATINA_SPILL_DIR") or tempfile.gettempdir())
