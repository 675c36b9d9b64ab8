import dataclasses
import types
import typing
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from patina.manifests.provenance import (
    SCHEMA,
    ProvenanceRecord,
    ProvenanceWriter,
    chain_key,
    read_provenance,
    source_chain_key,
)


def _chain(params_per_stage):
    keys, key = [], source_chain_key("f" * 64)
    for model, params in params_per_stage:
        key = chain_key(key, model, None, params)
        keys.append(key)
    return keys


def test_chain_keys_change_from_the_changed_stage_onward_only():
    base = _chain([("classical/assess@1", {"a": 1}), ("classical/tone@2", {"g": 2}), ("x/y@1", {})])
    upgraded = _chain([("classical/assess@1", {"a": 1}), ("classical/tone@3", {"g": 2}), ("x/y@1", {})])
    assert base == _chain([("classical/assess@1", {"a": 1}), ("classical/tone@2", {"g": 2}), ("x/y@1", {})])
    assert base[0] == upgraded[0]
    assert base[1] != upgraded[1] and base[2] != upgraded[2]
    assert source_chain_key("f" * 64) != source_chain_key("e" * 64)
    assert chain_key("k", "m/a@1", None, {"x": 1, "y": 2}) == chain_key("k", "m/a@1", None, {"y": 2, "x": 1})
    assert chain_key("k", "m/a@1", None, {}) != chain_key("k", "m/a@1", "0" * 64, {})


def _row(i, status="ok"):
    fields = dict.fromkeys(("source_uri", "source_sha256", "stage_index", "model_id", "model_sha256", "params"))
    fields |= {"decisions": None, "chain_key": None, "started_at": datetime(2026, 1, 1, tzinfo=UTC), "duration_s": 0.5}
    return ProvenanceRecord(run_id="r1", item_id=f"item-{i}", stage="read", status=status, **fields)


ARROW_TYPES = {str: pa.string(), int: pa.int16(), float: pa.float64(), datetime: pa.timestamp("us", tz="UTC")}


def test_the_record_has_the_schemas_columns_in_order_with_their_types_and_nullability():
    hints = typing.get_type_hints(ProvenanceRecord)
    fields = dataclasses.fields(ProvenanceRecord)
    assert [f.name for f in fields] == SCHEMA.names
    for f in fields:
        column, hint = SCHEMA.field(f.name), hints[f.name]
        optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
        base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
        assert ARROW_TYPES[base] == column.type, f.name
        assert optional == column.nullable, f.name


def test_a_record_survives_its_json_trip_and_is_stamped_with_the_run():
    record = dataclasses.replace(_row(1), params='{"a":1}', output_uri="s3://b/x.png")
    again = ProvenanceRecord.from_json(record.to_json())
    assert again == record and again.stamped("r2").run_id == "r2" and record.run_id == "r1"


def test_writer_commits_whole_parts_readable_by_pyarrow_and_duckdb(tmp_path):
    writer = ProvenanceWriter(str(tmp_path), "r1", flush_rows=4, flush_seconds=3600)
    writer.add([_row(i) for i in range(3)])
    assert writer.parts == []  # below the flush threshold: nothing committed yet
    writer.add([_row(i) for i in range(3, 10)])
    assert len(writer.parts) == 1 and pq.read_table(writer.parts[0]).num_rows == 10
    writer.add([_row(i) for i in range(10, 12)])
    writer.close()
    assert len(writer.parts) == 2 and writer.rows_written == 12
    table = read_provenance(str(tmp_path))
    assert table.schema == SCHEMA and table.num_rows == 12
    assert sorted(table["item_id"].to_pylist()) == sorted(f"item-{i}" for i in range(12))
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/_provenance/*/*.parquet')").fetchall()[0][0]
    assert count == 12


def test_reading_an_output_without_provenance_gives_an_empty_table(tmp_path):
    table = read_provenance(str(tmp_path))
    assert table.num_rows == 0 and table.schema == SCHEMA


def test_source_stamps_in_bulk_equal_one_stat_each_locally(tmp_path):
    from patina.manifests.storage import source_stamp, source_stamps

    for i in range(70):
        (tmp_path / f"{i}.png").write_bytes(b"x" * i)
    (tmp_path / "sub").mkdir()
    uris = [str(tmp_path / f"{i}.png") for i in range(70)] + [str(tmp_path / "gone.png"), str(tmp_path / "sub")]
    stamps = source_stamps(uris)
    assert stamps == {uri: source_stamp(uri) for uri in uris if uri != str(tmp_path / "sub")} | {uris[-1]: None}
    assert stamps[str(tmp_path / "gone.png")] is None and stamps[uris[5]].startswith("5:")


def test_a_row_with_an_unknown_status_is_refused_naming_the_item(tmp_path):
    with pytest.raises(ValueError, match=r"provenance row of 'item-3': status 'done' is not one of"):
        _row(3, status="done")
    with pytest.raises(ValueError, match=r"status 'done'"):
        dataclasses.replace(_row(3), status="done")
