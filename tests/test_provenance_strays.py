"""A stray or damaged file under ``_provenance/`` is named and skipped; nothing that reads the log crashes."""

from __future__ import annotations

import json
import subprocess
import sys

from patina.flows.config import parse_config
from patina.flows.restore import restore_collection
from patina.manifests.provenance import read_provenance, run_ids
from tests.conftest import make_collection

CONFIG = 'stages = ["assess"]\n[provenance]\nflush_rows = 3   # read, assess, write: a part per item\n'


def test_stray_and_damaged_files_are_skipped_with_their_names(prefect_server, ray_local, tmp_path):
    manifest = make_collection(tmp_path / "c", count=4, bad=False)
    config = tmp_path / "pipeline.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    summary = restore_collection(
        str(manifest), str(out), parse_config({"stages": ["assess"], "provenance": {"flush_rows": 3}})
    )
    run = summary["run_id"]
    parts = sorted((out / "_provenance" / run).glob("part-*.parquet"))
    assert len(parts) == 4
    damaged = parts[1]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a part truncated to half
    strays = [out / "_provenance" / "notes.txt", out / "_provenance" / run / "README.md"]
    for stray in strays:
        stray.write_text("a note somebody left")

    cli = [sys.executable, "-m", "patina.flows.cli"]
    plan = subprocess.run([*cli, "plan", str(manifest), "-o", str(out), "-c", str(config), "--json"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    counts = json.loads(plan.stdout)
    assert (counts["new"], counts["unchanged"]) == (1, 3)  # the damaged part's item is planned again
    for name in (*map(str, strays), str(damaged)):
        assert name in plan.stderr
    assert "damaged part" in plan.stderr and "planned again" in plan.stderr and "Traceback" not in plan.stderr

    export = subprocess.run([*cli, "provenance", "export", str(out)], capture_output=True, text=True, timeout=300)
    report = subprocess.run([*cli, "report", str(out)], capture_output=True, text=True, timeout=300)
    for done in (export, report):
        assert done.returncode == 0 and str(damaged) in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "premis" in export.stdout and report.stdout.strip().endswith(".html")
    assert run_ids(str(out)) == [run]  # notes.txt is no run
    assert read_provenance(str(out)).num_rows == 3 * 3
