"""The Ray Data pipeline on a real local Ray instance, on tiny images."""

import hashlib
import json
from pathlib import Path

import pyarrow.compute as pc

from patina.actors.pipeline import run_pipeline
from patina.flows.config import PipelineConfig, parse_config
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import read_manifest
from patina.manifests.storage import output_key
from tests.helpers import DEFAULT_STEPS

STAGES = DEFAULT_STEPS


def _rows(table, item_id):
    """An item's rows in pipeline order."""
    return sorted((r for r in table.to_pylist() if r["item_id"] == item_id), key=lambda r: r["stage_index"])


def _by_stage(rows):
    """An item's rows by stage name (each stage runs once per item and run)."""
    named = {r["stage"]: r for r in rows}
    assert len(named) == len(rows)
    return named


def test_every_item_gets_one_row_per_stage_and_good_items_an_output(ray_local, collection, tmp_path):
    out = tmp_path / "out"
    items = read_manifest(str(collection))
    summary = run_pipeline(items, PipelineConfig().run_settings("run-1", str(out)))
    assert (summary.total, summary.succeeded, summary.failed, summary.status) == (7, 4, 3, "partial")
    failures = {f.item_id: f for f in summary.failures}
    assert failures["missing"].error_type == "SourceUnavailable" and "gone.png" in failures["missing"].error_message
    assert failures["corrupt"].error_type == "DecodeError"
    assert failures["tampered"].error_type == "ChecksumMismatch"
    assert "sha256 mismatch" in failures["tampered"].error_message

    table = read_provenance(str(out))
    assert table.num_rows == 7 * len(STAGES)
    assert set(table["run_id"].to_pylist()) == {"run-1"}
    for i in range(4):
        rows = _rows(table, f"item/{i}")
        assert [r["stage"] for r in rows] == STAGES
        assert all(r["status"] in ("ok", "skipped") for r in rows)
        source = collection.parent / f"scan-{i}.{'png' if i % 2 else 'jpg'}"
        stage = _by_stage(rows)
        written = Path(stage["write"]["output_uri"])
        assert written.parent == out and written.name.startswith(output_key(f"item/{i}"))
        assert written.suffix == source.suffix  # the master's format family
        assert {r["output_sha256"] for r in rows} == {hashlib.sha256(written.read_bytes()).hexdigest()}
        assert {r["source_sha256"] for r in rows} == {hashlib.sha256(source.read_bytes()).hexdigest()}
        assert len({r["chain_key"] for r in rows}) == len(STAGES)  # each stage extends the chain
        assert json.loads(stage["assess"]["decisions"])["kind"] == (
            "single-hue" if i % 2 else "color"
        )  # sepia: one hue
        assert stage["inpaint"]["status"] == "ok" and json.loads(stage["inpaint"]["decisions"])["filled_pixels"] > 0
        assert all(r["model_id"] and r["host"] and r["device"] == "cpu" for r in rows)
        assert stage["write"]["patina_version"]
    for bad in ("missing", "corrupt", "tampered"):
        rows = _rows(table, bad)
        read = _by_stage(rows)["read"]
        assert read["status"] == "failed" and read["error_message"]
        assert [r["status"] for r in rows if r is not read] == ["skipped"] * (len(STAGES) - 1)
        assert all(r["output_uri"] is None for r in rows)
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("_"))
    assert len(written) == 4  # nothing for the failed items, no temporaries


def test_a_stage_failing_on_one_item_fails_only_that_item(ray_local, tmp_path):
    from tests.conftest import make_collection

    manifest = make_collection(tmp_path / "c", count=4, bad=False)  # heights 40, 44, 48, 52
    config = parse_config(
        {
            "plugins": ["tests.plugin_stages"],
            "stages": ["assess", "enhance"],
            "stage": {
                "enhance": {
                    "model": "test/fussy-invert@1",
                    "params": {"fail_below_height": 42},
                    "resources": {"batch_size": 4},
                }
            },
        }
    )
    out = tmp_path / "out"
    summary = run_pipeline(read_manifest(str(manifest)), config.run_settings("run-f", str(out)))
    assert (summary.succeeded, summary.failed) == (3, 1)
    assert summary.failures[0].item_id == "item/0" and summary.failures[0].stage == "enhance"
    assert "height 40 is below 42" in summary.failures[0].error_message
    table = read_provenance(str(out))
    failed = _rows(table, "item/0")
    assert [r["status"] for r in failed] == ["ok", "ok", "failed", "skipped"]
    assert _by_stage(failed)["enhance"]["error_type"] == "RuntimeError"
    ok = _rows(table, "item/1")
    assert [r["status"] for r in ok] == ["ok"] * 4
    assert json.loads(_by_stage(ok)["enhance"]["decisions"]) == {"inverted": True}


def test_a_second_run_into_the_same_output_breaks_nothing(ray_local, tmp_path):
    import numpy as np
    from PIL import Image

    from tests.conftest import make_collection

    manifest = make_collection(tmp_path / "c", count=2, bad=False)
    out = tmp_path / "out"
    items = read_manifest(str(manifest))
    first = run_pipeline(items, PipelineConfig().run_settings("run-a", str(out)))
    names = sorted(p.name for p in out.iterdir() if p.is_file())
    pixels = {name: np.asarray(Image.open(out / name)) for name in names}
    second = run_pipeline(items, PipelineConfig().run_settings("run-b", str(out)))
    assert first.status == second.status == "completed"
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == names  # whole files, no temporaries
    for name in names:  # same pixels; the embedded XMP history now names the second run
        image = Image.open(out / name)
        assert np.array_equal(np.asarray(image), pixels[name])
        assert "run-b" in image.info["xmp"].decode() and "run-a" not in image.info["xmp"].decode()
    table = read_provenance(str(out))
    assert sorted(set(table["run_id"].to_pylist())) == ["run-a", "run-b"]
    writes = table.filter(pc.equal(table["stage"], "write"))
    keys = {}
    for row in writes.to_pylist():
        keys.setdefault(row["item_id"], set()).add(row["chain_key"])
    assert all(len(v) == 1 for v in keys.values())  # same chain key in both runs
