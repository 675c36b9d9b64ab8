"""The pure planner over hand-built provenance: every classification, resume points, latest attempts."""

from __future__ import annotations

import json

from patina.manifests.items import Item
from patina.manifests.planner import LatestAttempts, plan
from patina.manifests.provenance import (
    SCHEMA,
    ProvenanceRecord,
    ProvenanceWriter,
    chain_key,
    read_latest_attempts,
    source_chain_key,
    step_link,
)

SHA = "a" * 64
STEPS = [("assess", "classical/assess@2", None, {"g": 4.0}), ("enhance", "classical/tone@3", None, {})]
WRITE = ("write", "patina/write@1", None, {"format": "png"})


def keys(steps, sha=SHA):
    key, out = source_chain_key(sha), []
    for stage, model_id, model_sha, params in steps:
        key = chain_key(key, model_id, model_sha, params)
        out.append((stage, key))
    return out


def attempt_rows(item_id, run_id, steps=(*STEPS, WRITE), status="ok", stamp="10:1", sha=SHA):
    """The rows one attempt of ``item_id`` writes: read, each step, write (the last one with ``status``)."""
    common = {"item_id": item_id, "run_id": run_id, "source_sha256": sha}
    read = json.dumps({"format": "png", "source_stamp": stamp})
    rows = [{**common, "stage": "read", "stage_index": 0, "status": "ok", "chain_key": source_chain_key(sha)}]
    rows[0]["decisions"] = read
    for index, (stage, key) in enumerate(keys(steps, sha), start=1):
        final = index == len(steps)
        rows.append({**common, "stage": stage, "stage_index": index, "status": status if final else "ok"})
        rows[-1].update(chain_key=key, decisions="{}")
    return rows


def history(folder, *attempts) -> str:
    """An output folder whose provenance holds ``attempts`` (lists of rows), one folder per run."""
    runs: dict[str, list[dict]] = {}
    for rows in attempts:
        runs.setdefault(rows[0]["run_id"], []).extend(rows)
    for run_id, rows in runs.items():
        writer = ProvenanceWriter(str(folder), run_id)
        writer.add([ProvenanceRecord(**{name: r.get(name) for name in SCHEMA.names}) for r in rows])
        writer.close()
    return str(folder)


def planned(items, output, steps=STEPS, stamps=None):
    stamps = stamps if stamps is not None else {item.item_id: "10:1" for item in items}
    write_link = (WRITE[0], step_link(*WRITE[1:]))
    return plan(items, LatestAttempts(read_latest_attempts(output)), steps, lambda source_format: write_link, stamps)


def test_each_item_is_classified_by_its_latest_attempt(tmp_path):
    output = history(
        tmp_path,
        attempt_rows("same", "r1"),
        attempt_rows("broke", "r1", status="failed"),
        attempt_rows("fixed", "r1", status="failed"),
        attempt_rows("fixed", "r2"),  # its latest attempt succeeded
        attempt_rows("moved", "r1"),
        attempt_rows("edited", "r1"),
        attempt_rows("gone", "r1"),
    )
    items = [Item(i, f"{i}.png") for i in ("same", "broke", "fixed", "moved", "edited", "fresh")]
    items[4] = Item("edited", "edited.png", checksum=("sha256", "b" * 64))  # the manifest's checksum changed
    stamps = {"same": "10:1", "broke": "10:1", "fixed": "10:1", "moved": "11:2", "edited": "10:1"}
    result = planned(items, output, stamps=stamps)
    assert result.unchanged == ["same", "fixed"]
    assert result.failed == ["broke"] and result.new == ["fresh"]
    assert result.source == ["moved", "edited"] and result.removed == ["gone"]
    assert result.changed == {} and result.to_run == {"broke", "moved", "edited", "fresh"}


def test_a_changed_step_reruns_from_it_and_resumes_after_the_step_before(tmp_path):
    output = history(tmp_path, attempt_rows("a", "r1"))
    later = [STEPS[0], ("enhance", "classical/tone@3", None, {"max_gain": 2.0})]  # enhance changed
    result = planned([Item("a", "a.png")], output, steps=later)
    assert result.changed == {"a": "enhance"}
    assert result.resume_points == {"a": (2, keys(STEPS)[0][1])}  # step 2 from assess's output
    earlier = [("assess", "classical/assess@2", None, {"g": 5.0}), STEPS[1]]
    first = planned([Item("a", "a.png")], output, steps=earlier)
    assert first.changed == {"a": "assess"} and first.resume_points == {}  # from the first stage: from the master
    fewer = planned([Item("a", "a.png")], output, steps=STEPS[:1])
    assert fewer.changed == {"a": "write"}  # a stage dropped: the write's key changed


def test_latest_attempts_come_from_each_items_latest_run_over_many_runs(tmp_path):
    nights = [["a", "b", "c"], ["a"], ["a", "c"], ["b"]]
    out = history(
        tmp_path,
        *(
            attempt_rows(item_id, f"2026010{night + 1}T000000Z-00000{night}", stamp=f"night{night}")
            for night, items in enumerate(nights)
            for item_id in items
        ),
    )
    latest = read_latest_attempts(out)
    by_item = {row["item_id"]: row["run_id"] for row in latest.to_pylist()}
    assert by_item == {"a": "20260103T000000Z-000002", "b": "20260104T000000Z-000003", "c": "20260103T000000Z-000002"}
    assert latest.num_rows == 3 * (len(STEPS) + 2) and set(latest.column_names) >= {"chain_key", "decisions"}
    attempts = LatestAttempts(latest)
    b = attempts.attempts["b"]
    assert (b.source_stamp, b.source_format, b.steps_count) == ("night3", "png", len(STEPS) + 1)
    assert attempts.attempts["a"].finished and "d" not in attempts and len(attempts) == 3
    assert [stage for stage, _ in attempts.steps("a")] == ["assess", "enhance", "write"]
    assert attempts.steps("b")[-1][1] == b.final_key == keys((*STEPS, WRITE))[-1][1]
    assert read_latest_attempts(str(tmp_path / "nothing")).num_rows == 0
