"""Planning a group of id buckets at a time: the same plan as planning at once, in bounded memory."""

from __future__ import annotations

import dataclasses
import itertools
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from patina.actors.io_tasks import write_step
from patina.actors.planning import PLANNED_DIR, plan_run
from patina.actors.settings import stage_identity
from patina.flows.config import parse_config
from patina.manifests.buckets import BUCKETS, BucketSpill, bucket_of, groups
from patina.manifests.items import ManifestError
from patina.manifests.readers import iter_manifest
from patina.manifests.storage import output_key, source_stamp
from tests.test_planner import attempt_rows, history


def test_a_bucket_is_the_same_in_every_process_and_spills_read_back_whole(tmp_path):
    ids = [f"item/{n}" for n in range(3000)]
    assert list(bucket_of(ids[:3])) == [zlib.crc32(i.encode()) % BUCKETS for i in ids[:3]]  # not Python's salted hash
    spill = BucketSpill(tmp_path, "t", pa.schema([("item_id", pa.string()), ("n", pa.int64())]))
    spill.add(pa.table({"item_id": ids[:2000], "n": range(2000)}))
    spill.add(pa.table({"item_id": ids[2000:], "n": range(2000, 3000)}))
    ranges = list(groups(spill.rows_per_bucket, 500))
    assert ranges[0].start == 0 and ranges[-1].stop == BUCKETS
    assert all(a.stop == b.start for a, b in itertools.pairwise(ranges))  # contiguous, none skipped
    seen = []
    for buckets in ranges:
        part = spill.read(buckets)
        assert set(bucket_of(part["item_id"])) <= set(buckets)
        assert part.num_rows < 500 + spill.rows_per_bucket.max()  # a group holds about what was asked, never all
        seen += part["n"].to_pylist()
    assert sorted(seen) == list(range(3000))


def _collection(tmp_path, ids):
    master = tmp_path / "masters" / "m.png"
    master.parent.mkdir()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(master)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("item_id,source_uri\n" + "".join(f"{i},masters/m.png\n" for i in ids))
    return manifest, str(master)


def _settings(out, data=None, run_id="r9"):
    return parse_config({"stages": ["assess"], **(data or {})}).run_settings(run_id, str(out))


def test_planning_in_groups_gives_the_plan_of_planning_at_once(tmp_path):
    ids = [f"item/{n:03d}" for n in range(120)]
    manifest, master = _collection(tmp_path, ids)
    out = tmp_path / "out"
    settings = _settings(out)
    stage = settings.stages[0]
    write = write_step("png", settings)
    steps = ((stage.stage, *stage_identity(stage)), (write.stage, write.model_id, write.model_sha256, write.params))
    old_steps = ((stage.stage, stage.model_id, None, {"older": True}), steps[1])
    stamp = source_stamp(master)
    attempts = [attempt_rows(i, "r1", steps=steps, stamp=stamp) for i in ids[:40]]  # unchanged
    attempts += [attempt_rows(i, "r1", steps=steps, stamp=stamp, status="failed") for i in ids[40:60]]
    attempts += [attempt_rows(i, "r2", steps=old_steps, stamp=stamp) for i in ids[60:80]]  # changed from assess
    attempts += [attempt_rows(f"gone/{n}", "r1", steps=steps, stamp=stamp) for n in range(7)]  # removed
    history(out, *attempts)  # ids[80:] are new
    for item_id in ids[:40]:  # the unchanged items' derivatives (their write rows record no size)
        (out / f"{output_key(item_id)}.png").write_bytes(b"derivative")

    at_once = plan_run(iter_manifest(str(manifest)), settings, write=False, keep_items=True)
    in_groups = plan_run(iter_manifest(str(manifest)), settings, write=False, keep_items=True, group_rows=10)
    expected = {"new": 40, "failed": 20, "source_changed": 0, "changed": {"assess": 20}, "derivative_changed": 0}
    expected["unchanged"] = 40
    assert at_once.counts == in_groups.counts == {**expected, "removed": 7, "resumed": 0, "to_run": 80}
    for name in ("new", "failed", "unchanged", "removed"):
        assert sorted(getattr(at_once.items, name)) == sorted(getattr(in_groups.items, name))
    assert in_groups.items.changed == at_once.items.changed == dict.fromkeys(ids[60:80], "assess")

    written = plan_run(iter_manifest(str(manifest)), settings, group_rows=10)
    assert written.items is None and written.rows.count == 80 and written.rows.uri == str(out / PLANNED_DIR / "r9")
    rows = pq.read_table(written.rows.uri)
    assert sorted(rows["item_id"].to_pylist()) == sorted(ids[40:])
    assert set(rows["source_uri"].to_pylist()) == {master} and set(rows["resume_index"].to_pylist()) == {0}
    assert len(list((out / PLANNED_DIR / "r9").iterdir())) > 1  # one part per group with something to run

    stale = out / PLANNED_DIR / "r0-killed" / "part-00000.parquet"
    stale.parent.mkdir()
    stale.write_bytes(b"left by a run that died")
    plan_run(iter_manifest(str(manifest)), settings, write=False)
    assert stale.exists()  # only a run that holds the lock (and writes) clears them
    everything = plan_run(iter_manifest(str(manifest)), dataclasses.replace(settings, run_id="r10"), everything=True)
    assert everything.counts is None and everything.rows.count == 120
    assert sorted(p.name for p in (out / PLANNED_DIR).iterdir()) == ["r10"]  # the killed run's and r9's are gone


def test_a_duplicate_id_far_apart_is_named_with_both_lines_and_nothing_is_left(tmp_path):
    ids = [f"item/{n}" for n in range(50)]
    manifest, _ = _collection(tmp_path, [*ids, "item/7"])
    out = tmp_path / "out"
    with pytest.raises(ManifestError, match=r"line 52: duplicate item_id 'item/7' \(first at .*line 9\)"):
        plan_run(iter_manifest(str(manifest)), _settings(out), group_rows=5)
    assert not (out / PLANNED_DIR / "r9").exists()


def test_a_long_scan_reads_a_batch_at_a_time_and_fills_what_an_older_log_lacks(tmp_path, monkeypatch):
    import pyarrow.dataset as pads

    from patina.manifests import provenance
    from patina.manifests.provenance import SCHEMA, scan

    rows = [r for n in range(30) for r in attempt_rows(f"item/{n}", "r1")]
    old = pa.Table.from_pylist(rows, schema=SCHEMA).drop_columns(["descriptive"])  # logs from before that column
    pq.write_table(old, tmp_path / "part-00000.parquet", row_group_size=16)
    dataset = pads.dataset(str(tmp_path), schema=SCHEMA, format="parquet")
    monkeypatch.setattr(provenance, "SCAN_ROWS", 10)
    batches = list(scan(dataset))
    assert max(b.num_rows for b in batches) <= 10 and sum(b.num_rows for b in batches) == len(rows)
    assert all(b.schema == SCHEMA and b.column("descriptive").null_count == b.num_rows for b in batches)
    assert next(b.num_columns for b in scan(dataset, ["item_id", "stage"])) == 2


def test_planning_retries_what_storage_may_fix_but_never_a_bad_manifest_or_output():
    from prefect.states import Failed

    from patina.flows.restore import _transient
    from patina.manifests.locations import OutputInsideMasters

    assert _transient(None, None, Failed(data=OSError("connection reset by peer")))
    assert not _transient(None, None, Failed(data=ManifestError("m.csv line 3: item_id is empty")))
    assert not _transient(None, None, Failed(data=OutputInsideMasters("output is inside the masters")))
