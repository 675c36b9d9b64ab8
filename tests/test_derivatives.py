"""A derivative deleted or damaged after its run is made again: the plan checks what it wrote."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc

from patina.actors.planning import plan_run
from patina.flows.config import parse_config
from patina.flows.restore import restore_collection
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import iter_manifest
from tests.conftest import make_collection

CONFIG = {"stages": ["assess"]}


def _plan(manifest, out, verify=False):
    settings = parse_config(CONFIG).run_settings("plan", str(out))
    return plan_run(iter_manifest(str(manifest)), settings, write=False, keep_items=True, verify=verify)


def _written(out) -> dict[str, tuple[str, str]]:
    """item -> (derivative path, sha256) of each item's latest successful write."""
    table = read_provenance(str(out)).sort_by("run_id")
    writes = table.filter(pc.and_(pc.equal(table["stage"], "write"), pc.equal(table["status"], "ok")))
    return {r["item_id"]: (r["output_uri"], r["output_sha256"]) for r in writes.to_pylist()}


def test_a_missing_or_changed_derivative_is_planned_and_made_again(prefect_server, ray_local, tmp_path):
    manifest = make_collection(tmp_path / "c", count=4, bad=False)
    out = tmp_path / "out"
    restore_collection(str(manifest), str(out), parse_config(CONFIG))
    written = _written(out)
    deleted, junk, same_size = (written[f"item/{i}"][0] for i in range(3))
    Path(deleted).unlink()
    Path(junk).write_bytes(b"not the derivative")
    size = Path(same_size).stat().st_size
    Path(same_size).write_bytes(b"\0" * size)  # the same size: only --verify sees it

    plain, verified = _plan(manifest, out), _plan(manifest, out, verify=True)
    assert sorted(plain.items.derivative) == ["item/0", "item/1"] and plain.counts["derivative_changed"] == 2
    assert sorted(verified.items.derivative) == ["item/0", "item/1", "item/2"]
    assert verified.items.unchanged == ["item/3"] and verified.to_run == 3

    cli = [sys.executable, "-m", "patina.flows.cli", "plan", str(manifest), "-o", str(out), "--json", "--verify"]
    config = tmp_path / "pipeline.toml"
    config.write_text('stages = ["assess"]\n')
    shown = subprocess.run([*cli, "-c", str(config)], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert sorted(json.loads(shown.stdout)["derivative_items"]) == ["item/0", "item/1", "item/2"]

    summary = restore_collection(str(manifest), str(out), parse_config(CONFIG), verify=True)
    assert summary["plan"]["derivative_changed"] == 3 and summary["succeeded"] == 3
    for path, sha in _written(out).values():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
    again = _plan(manifest, out, verify=True)
    assert again.to_run == 0 and len(again.items.unchanged) == 4
