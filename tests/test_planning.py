"""Plan and resume: a rerun does only what is new, failed, or changed by a master or a step upgrade."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pyarrow.compute as pc
import pytest

from patina.actors.planning import plan_run
from patina.flows.config import parse_config
from patina.flows.restore import restore_collection
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import iter_manifest
from tests.helpers import DEFAULT_STEPS

GOOD = [f"item/{i}" for i in range(4)]
BAD = ["missing", "corrupt", "tampered"]


def _plan(manifest, out, data=None):
    config = parse_config(data or {})
    return plan_run(
        iter_manifest(str(manifest)), config.run_settings("plan", str(out)), write=False, keep_items=True
    ).items


def _run(manifest, out, data=None):
    return restore_collection(str(manifest), str(out), parse_config(data or {}))


def _runs_of(out, item_id):
    table = read_provenance(str(out))
    rows = table.filter(pc.and_(pc.equal(table["item_id"], item_id), pc.equal(table["stage"], "write")))
    return sorted(rows["run_id"].to_pylist())


def test_rerun_does_only_new_failed_and_changed_work(prefect_server, ray_local, collection, tmp_path):
    out = tmp_path / "out"
    first_plan = _plan(collection, out)
    assert sorted(first_plan.new) == sorted(GOOD + BAD) and first_plan.to_run == set(GOOD + BAD)

    first = _run(collection, out)
    assert (first["succeeded"], first["failed"]) == (4, 3)
    assert not (out / "_planned").exists()  # the run's planned rows were its input only: removed

    again = _plan(collection, out)
    assert sorted(again.unchanged) == GOOD and sorted(again.failed) == sorted(BAD) and not again.changed
    second = _run(collection, out)
    assert (second["total"], second["failed"]) == (3, 3)  # only the failed ones were tried again
    assert second["plan"]["unchanged"] == 4
    assert len(_runs_of(out, "item/0")) == 1  # a finished item is not processed twice

    # A parameter upgrade of enhance: that stage and the write run again for every restored item.
    upgraded = {"stage": {"enhance": {"params": {"max_gain": 2.0}}}}
    changed = _plan(collection, out, upgraded)
    assert changed.changed == dict.fromkeys(GOOD, "enhance") and not changed.unchanged
    third = _run(collection, out, upgraded)
    assert third["plan"]["changed"] == {"enhance": 4} and third["succeeded"] == 4
    assert sorted(_plan(collection, out, upgraded).unchanged) == GOOD

    # A model set given to the flow (tonight's models) is planned like any other change.
    with_plugin = parse_config({**upgraded, "plugins": ["tests.plugin_stages"]})
    model_set = restore_collection(str(collection), str(out), with_plugin, models={"enhance": "test/fussy-invert@1"})
    assert model_set["plan"]["changed"] == {"enhance": 4} and model_set["total"] == 4 + 3

    # An earlier stage's upgrade names that stage; the default config differs from the upgraded one at enhance.
    earlier = {"stage": {"detect_damage": {"params": {"threshold": 0.6}}, "enhance": {"params": {"max_gain": 2.0}}}}
    assert set(_plan(collection, out, earlier).changed.values()) == {"detect_damage"}


def test_changed_master_and_removed_items_are_found(prefect_server, ray_local, tmp_path):
    from tests.conftest import make_collection

    manifest = make_collection(tmp_path / "c", count=3, bad=False)
    out = tmp_path / "out"
    assert _run(manifest, out)["succeeded"] == 3
    noop = _run(manifest, out)  # a finished collection: nothing to do, no Ray started
    assert (noop["total"], noop["plan"]["unchanged"], noop.get("report_uri")) == (0, 3, None)
    master = tmp_path / "c" / "scan-1.png"
    master.write_bytes(master.read_bytes() + b"\0")  # another size: a changed master (e.g. a rescan)
    with open(manifest, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["item_id"] != "item/2"]
    for row in rows:
        row["checksum"] = ""  # the rescan no longer matches the recorded checksum
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item_id", "source_uri", "checksum"])
        writer.writeheader()
        writer.writerows(rows)
    planned = _plan(manifest, out)
    assert planned.source == ["item/1"] and planned.unchanged == ["item/0"] and planned.removed == ["item/2"]
    summary = _run(manifest, out)
    assert summary["total"] == 1 and summary["plan"]["removed"] == 1
    assert len(list(out.glob("item%2F2.*"))) == 1  # removed items are reported, never deleted


@pytest.mark.slow
def test_cli_plan_counts_match_what_run_then_does(collection, tmp_path):
    out = tmp_path / "out"

    def patina(*args):
        done = subprocess.run(
            [sys.executable, "-m", "patina.flows.cli", *args], capture_output=True, text=True, timeout=300
        )
        assert done.returncode in (0, 3), done.stderr[-2000:]
        return json.loads(done.stdout)

    patina("run", str(collection), "--output", str(out), "--num-cpus", "2", "--json")
    config = tmp_path / "upgrade.toml"
    config.write_text("[stage.inpaint.params]\ndilate = 1\n")
    planned = patina("plan", str(collection), "--output", str(out), "-c", str(config), "--json")
    assert (planned["to_run"], planned["changed"], planned["failed"], planned["unchanged"]) == (7, {"inpaint": 4}, 3, 0)
    ran = patina("run", str(collection), "--output", str(out), "-c", str(config), "--num-cpus", "2", "--json")
    assert ran["total"] == planned["to_run"] and ran["plan"]["changed"] == planned["changed"]
    after = patina("plan", str(collection), "--output", str(out), "-c", str(config), "--json")
    assert (after["to_run"], after["unchanged"]) == (3, 4)  # only the three bad items remain


def test_kept_intermediates_let_an_upgrade_run_exactly_the_affected_steps(prefect_server, ray_local, tmp_path):
    import numpy as np
    from PIL import Image

    from tests.conftest import make_collection

    manifest = make_collection(tmp_path / "c", count=3, bad=False)
    keep = {"keep_intermediates": True, "output": {"format": "png"}}
    out = tmp_path / "out"
    first = _run(manifest, out, keep)
    assert first["succeeded"] == 3
    assert len(list((out / "_intermediates").rglob("*.npz"))) == 3 * (len(DEFAULT_STEPS) - 2)  # every stage, every item

    upgraded = {**keep, "stage": {"enhance": {"params": {"max_gain": 1.5}}}}
    planned = _plan(manifest, out, upgraded)
    assert planned.changed == dict.fromkeys(["item/0", "item/1", "item/2"], "enhance")
    second = _run(manifest, out, upgraded)
    assert second["plan"]["resumed"] == 3 and second["succeeded"] == 3

    table = read_provenance(str(out))
    rows = [r for r in table.to_pylist() if r["run_id"] == second["run_id"] and r["item_id"] == "item/0"]
    status = {r["stage"]: r["status"] for r in rows}
    expected = {"read": "ok", "assess": "skipped", "detect_damage": "skipped", "inpaint": "skipped",
                "enhance": "ok", "faces": "skipped", "write": "ok"}  # fmt: skip
    assert status == {k: v for k, v in expected.items() if k in DEFAULT_STEPS}  # faces: no face in these scans
    reused = next(json.loads(r["decisions"]) for r in rows if r["stage"] == "assess")
    assert reused["reason"] == "reused from a kept intermediate" and "kind" in reused
    assert sorted(_plan(manifest, out, upgraded).unchanged) == ["item/0", "item/1", "item/2"]

    # Pruning: the first run's enhance results (and nothing else) are needed by no current chain key
    from patina.flows.cli import main

    kept = sorted((out / "_intermediates").rglob("*.npz"))
    outputs = sorted(p for p in out.rglob("*") if p.is_file() and "_intermediates" not in p.parts)
    assert main(["prune", str(out), "--keep-runs", "2"]) == 0 and sorted(out.rglob("*.npz")) == kept
    assert main(["prune", str(out), "--older-than", "1"]) == 0 and sorted(out.rglob("*.npz")) == kept  # all fresh
    assert main(["prune", str(out), "--dry-run"]) == 0 and sorted(out.rglob("*.npz")) == kept
    assert main(["prune", str(out)]) == 0
    left = sorted((out / "_intermediates").rglob("*.npz"))
    assert len(kept) - len(left) == 3  # one per item: the old enhance result
    current = {r["chain_key"] for r in table.to_pylist() if r["run_id"] == second["run_id"] and r["chain_key"]}
    assert {p.stem for p in left} <= current
    assert sorted(p for p in out.rglob("*") if p.is_file() and "_intermediates" not in p.parts) == outputs
    assert sorted(_plan(manifest, out, upgraded).unchanged) == ["item/0", "item/1", "item/2"]  # still done

    # The same upgrade computed from the masters gives the same pixels (to 16-bit precision).
    fresh = tmp_path / "fresh"
    _run(manifest, fresh, upgraded)
    for path in fresh.glob("*.png"):
        a = np.asarray(Image.open(path)).astype(int)
        b = np.asarray(Image.open(out / path.name)).astype(int)
        assert np.abs(a - b).max() <= 1


def test_a_reused_step_says_it_was_reused_even_if_it_had_skipped_for_another_reason(tmp_path):
    import numpy as np

    from patina.actors.intermediates import save_intermediate
    from patina.actors.io_tasks import read_item
    from patina.actors.item_state import ItemState
    from patina.manifests.provenance import ProvenanceRecord

    stored = ItemState(source_sha256="a" * 64, chain_key="b" * 64)
    for stage, status, decisions in (
        ("read", "ok", {"format": "PNG"}),
        ("inpaint", "skipped", {"reason": "mask is empty"}),
    ):
        stored.records.append(
            ProvenanceRecord(
                "", "x", "gone.png", "a" * 64, stage, 0, None, None, "{}", json.dumps(decisions), None, status
            )
        )
    kept = tmp_path / "kept.npz"
    save_intermediate(str(kept), np.zeros((4, 4, 3), np.uint16), None, b"", stored.to_json())
    settings = parse_config({}).run_settings("r", str(tmp_path / "out"))
    row = {"item_id": "x", "source_uri": "gone.png", "checksum": "", "resume_index": 4, "resume_uri": str(kept)}
    state = ItemState.from_json(read_item(row, settings)["state"])
    read, inpaint = state.records
    assert inpaint.status == "skipped" and json.loads(inpaint.decisions)["reason"] == "reused from a kept intermediate"
    assert json.loads(read.decisions)["resumed_from"] == str(kept) and state.chain_key == "b" * 64
