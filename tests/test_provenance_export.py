"""PREMIS 3 export and the documented DuckDB queries, on a real run's provenance."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import pytest
from lxml import etree

from patina.actors.pipeline import run_pipeline
from patina.flows.config import parse_config
from patina.manifests.premis import PREMIS, premis_document
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import read_manifest
from tests.helpers import DEFAULT_STEPS

P = f"{{{PREMIS}}}"
LOC_EVENT_TYPES = {"message digest calculation", "forensic feature analysis", "modification", "creation"}


@pytest.fixture(scope="module")
def two_runs(ray_local, tmp_path_factory):
    """A collection with bad items, run, then run again with enhance upgraded."""
    from tests.conftest import make_collection

    root = tmp_path_factory.mktemp("premis")
    manifest = make_collection(root / "c")
    out = root / "out"
    items = read_manifest(str(manifest))
    run_pipeline(items, parse_config({}).run_settings("20260101T000000Z-aaaaaa", str(out)))
    upgraded = parse_config({"stage": {"enhance": {"params": {"max_gain": 2.0}}}})
    run_pipeline(items[:2], upgraded.run_settings("20260102T000000Z-bbbbbb", str(out)))
    return out


def test_premis_document_has_objects_events_agents_in_schema_order(two_runs):
    table = read_provenance(str(two_runs))
    document = premis_document(table, include_paths=True)  # local files by file:// URI, to check their fixity
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "fixtures" / "premis" / "premis-v3-0.xsd")))
    schema.assertValid(etree.fromstring(document))  # the Library of Congress schema accepts it
    root = ET.fromstring(document)
    assert root.tag == f"{P}premis" and root.get("version") == "3.0"
    kinds = [child.tag.removeprefix(P) for child in root]
    assert kinds == sorted(kinds, key=["object", "event", "agent"].index)  # the schema's sequence
    events = root.findall(f"{P}event")
    assert len(events) == table.num_rows
    assert {e.findtext(f"{P}eventType") for e in events} <= LOC_EVENT_TYPES
    for event in events:
        assert event.findtext(f"{P}eventDateTime") and event.findtext(f"{P}eventIdentifier/{P}eventIdentifierValue")
        detail = event.findtext(f"{P}eventDetailInformation/{P}eventDetail")
        assert "program=patina " in detail and "model=" in detail and "params=" in detail
    failed = [e for e in events if e.findtext(f"{P}eventOutcomeInformation/{P}eventOutcome") == "failed"]
    notes = [e.findtext(f"{P}eventOutcomeInformation/{P}eventOutcomeDetail/{P}eventOutcomeDetailNote") for e in failed]
    assert len(failed) == 3 and any(n.startswith("ChecksumMismatch: sha256 mismatch") for n in notes)

    objects = root.findall(f"{P}object")
    derived = [o for o in objects if o.find(f"{P}relationship") is not None]
    masters = [o for o in objects if o.find(f"{P}relationship") is None]
    assert len(masters) == 4 and len(derived) == 4  # the bad items left no master read and no derivative
    for obj in derived:
        uri = obj.findtext(f"{P}objectIdentifier/{P}objectIdentifierValue")
        digest = obj.findtext(f"{P}objectCharacteristics/{P}fixity/{P}messageDigest")
        assert obj.findtext(f"{P}objectCharacteristics/{P}fixity/{P}messageDigestAlgorithm") == "SHA-256"
        assert hashlib.sha256(Path(unquote(urlparse(uri).path)).read_bytes()).hexdigest() == digest
        relation = obj.find(f"{P}relationship")
        assert relation.findtext(f"{P}relationshipType") == "derivation"
        source = relation.findtext(f"{P}relatedObjectIdentifier/{P}relatedObjectIdentifierValue")
        assert source in {m.findtext(f"{P}objectIdentifier/{P}objectIdentifierValue") for m in masters}

    agents = {a.findtext(f"{P}agentIdentifier/{P}agentIdentifierValue"): a for a in root.findall(f"{P}agent")}
    assert any(name.startswith("patina ") for name in agents)
    assert "patina/damage-unet@2" in agents
    assert agents["patina/damage-unet@2"].findtext(f"{P}agentType") == "software"


def test_cli_exports_one_run_to_a_file(two_runs, tmp_path):
    target = tmp_path / "premis.xml"
    cli = [sys.executable, "-m", "patina.flows.cli", "provenance", "export", str(two_runs)]
    done = subprocess.run([*cli, "--run", "20260102T000000Z-bbbbbb", "--to", str(target)], capture_output=True)
    assert done.returncode == 0, done.stderr
    root = ET.parse(target).getroot()
    assert len(root.findall(f"{P}event")) == 2 * len(DEFAULT_STEPS)  # two items, every step, that run only
    missing = subprocess.run([*cli, "--run", "no-such-run"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no provenance" in missing.stderr


def test_documented_duckdb_queries_answer_the_archivists_questions(two_runs):
    log = f"read_parquet('{two_runs}/_provenance/*/*.parquet')"
    used = duckdb.sql(
        f"SELECT DISTINCT item_id FROM {log} WHERE model_id = 'patina/damage-unet@2' AND status = 'ok'"
    ).fetchall()
    assert sorted(r[0] for r in used) == [f"item/{i}" for i in range(4)]
    by_type = dict(
        duckdb.sql(f"SELECT error_type, count(*) FROM {log} WHERE status = 'failed' GROUP BY error_type").fetchall()
    )
    assert by_type == {"SourceUnavailable": 1, "DecodeError": 1, "ChecksumMismatch": 1}
    changed = duckdb.sql(
        f"""
        WITH steps AS (SELECT run_id, item_id, stage, chain_key FROM {log} WHERE status IN ('ok', 'skipped')),
        prev AS (SELECT cur.run_id, cur.item_id, max(p.run_id) AS before FROM steps cur JOIN steps p
                 ON p.item_id = cur.item_id AND p.run_id < cur.run_id GROUP BY ALL)
        SELECT cur.item_id, cur.stage FROM steps cur JOIN prev USING (run_id, item_id)
        LEFT JOIN steps old ON old.item_id = cur.item_id AND old.stage = cur.stage AND old.run_id = prev.before
        WHERE cur.run_id = '20260102T000000Z-bbbbbb' AND old.chain_key IS DISTINCT FROM cur.chain_key
        ORDER BY ALL
        """
    ).fetchall()
    after = DEFAULT_STEPS[DEFAULT_STEPS.index("enhance") :]
    assert changed == [(f"item/{i}", stage) for i in range(2) for stage in after]


def test_a_run_is_bagged_with_its_derivatives_provenance_premis_and_report(two_runs, tmp_path, capsys):
    import bagit

    from patina.flows.cli import main
    from patina.flows.report import write_report

    run = "20260102T000000Z-bbbbbb"
    write_report(str(two_runs), run)
    dest = tmp_path / "bags" / "run-b"
    assert main(["bag", str(two_runs), "--run", run, "--to", str(dest)]) == 0
    assert "2 derivatives" in capsys.readouterr().out
    bag = bagit.Bag(str(dest))
    assert bag.is_valid() and set(bag.algorithms) == {"sha256", "sha512"}
    payload = sorted(str(Path(p).relative_to("data")) for p in bag.payload_files())
    derivatives = [p for p in payload if p.startswith("derivatives/")]
    assert len(derivatives) == 2 and "premis.xml" in payload and "report.html" in payload
    assert any(p.startswith(f"provenance/{run}/part-") and p.endswith(".parquet") for p in payload)
    table = read_provenance(str(two_runs))
    written = {
        r["output_uri"]: r["output_sha256"] for r in table.to_pylist() if r["run_id"] == run and r["stage"] == "write"
    }
    for path in derivatives:  # the very bytes the run wrote
        assert hashlib.sha256((dest / "data" / path).read_bytes()).hexdigest() in set(written.values())
    info = bag.info
    assert info["Patina-Run-Id"] == run and info["External-Identifier"] == run and info["Patina-Version"]
    assert str(two_runs.parent) not in (dest / "data" / "premis.xml").read_text()  # nothing private published

    assert main(["bag", "--validate", str(dest)]) == 0
    corrupted = dest / "data" / derivatives[0]
    corrupted.write_bytes(corrupted.read_bytes()[:-10] + b"0123456789")
    assert main(["bag", "--validate", str(dest)]) == 1
    out = capsys.readouterr().out
    assert f"data/{derivatives[0]}" in out and "BAD" in out  # reported by name

    assert main(["bag", str(two_runs), "--run", run, "--to", str(dest)]) == 2  # never over an existing folder
    assert "already exists" in capsys.readouterr().err


def test_a_derivative_changed_since_its_run_is_not_bagged_and_nothing_is_left(two_runs, tmp_path):
    import shutil

    from patina.manifests.bagging import BagError, bag_run

    out = tmp_path / "out"
    shutil.copytree(two_runs, out)
    run = "20260102T000000Z-bbbbbb"
    rows = [r for r in read_provenance(str(out)).to_pylist() if r["run_id"] == run and r["stage"] == "write"]
    changed = out / Path(rows[0]["output_uri"]).name
    changed.write_bytes(changed.read_bytes() + b"\0")
    with pytest.raises(BagError, match=r"has changed since run 20260102T000000Z-bbbbbb wrote it"):
        bag_run(str(out), run, tmp_path / "bag")
    assert not (tmp_path / "bag").exists() and not list(tmp_path.glob(".bag.partial-*"))
    with pytest.raises(BagError, match="no run 'nope'"):
        bag_run(str(out), "nope", tmp_path / "bag")
