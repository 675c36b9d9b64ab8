"""Descriptive metadata carried through: manifest (own column names) -> XMP, provenance, PREMIS, report."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyexiv2
import pytest
from lxml import etree

from patina.actors.pipeline import run_pipeline
from patina.flows.config import ConfigError, parse_config
from patina.flows.report import write_report
from patina.manifests.items import ManifestError
from patina.manifests.premis import PREMIS, premis_document
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import read_manifest

XSD = Path(__file__).parent / "fixtures" / "premis" / "premis-v3-0.xsd"
P = f"{{{PREMIS}}}"
NOC = "http://rightsstatements.org/vocab/NoC-US/1.0/"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
COLUMNS = {"item_id": "Identifier", "source_uri": "File", "rights": "Rights statement", "collection": "Fonds"}
HEADER = ["Identifier", "File", "Title", "Photographer", "DATE", "Rights statement", "Fonds", "Box"]


def _collection(folder: Path) -> Path:
    """A collection CSV with its own headers: three scans, one of them missing."""
    from tests.conftest import make_collection

    plain = make_collection(folder, count=2, bad=False)
    rows = [
        ["item/0", "scan-0.jpg", "Harbour & boats <1927>", "Anna Ström", "1927", NOC, "Harbour views", "12"],
        ["item/1", "scan-1.png", "Quay", "", "c. 1930", CC_BY, "Harbour views", "12"],
        ["lost", "gone.png", "A lost print", "B. Berg", "1931", "Rights reserved by the family", "Harbour views", ""],
    ]
    manifest = folder / "collection.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    plain.unlink()
    return manifest


@pytest.fixture(scope="module")
def described_run(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("descriptive")
    manifest = _collection(root / "c")
    config = parse_config({"manifest": {"columns": COLUMNS}, "stages": ["assess", "enhance"]})
    items = read_manifest(str(manifest), columns=config.manifest.columns)
    out = root / "out"
    summary = run_pipeline(items, config.run_settings("20260301T000000Z-dddddd", str(out)))
    assert (summary.succeeded, summary.failed) == (2, 1)
    return out


def test_a_collection_csv_with_its_own_headers_reads_through_the_column_map(tmp_path):
    items = read_manifest(str(_collection(tmp_path)), columns=COLUMNS)
    first = items[0]
    assert (first.item_id, first.title, first.creator, first.date) == (
        "item/0",
        "Harbour & boats <1927>",
        "Anna Ström",
        "1927",
    )
    assert (first.rights, first.collection) == (NOC, "Harbour views")
    assert first.metadata == {"Box": "12"}  # the fields used are not repeated as free metadata
    assert items[1].creator is None
    with pytest.raises(ManifestError, match=r"maps item_id = 'Identifier'.*header is \['id'"):
        (tmp_path / "m.csv").write_text("id,File\nx,a.png\n")
        read_manifest(str(tmp_path / "m.csv"), columns={"item_id": "Identifier", "source_uri": "File"})
    with pytest.raises(ConfigError, match=r"manifest.columns: .*unknown field\(s\) \['tilte'\]"):
        parse_config({"manifest": {"columns": {"tilte": "Title"}}})


def test_jsonl_parquet_and_iiif_labels_map_too(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "file": "a.png", "Fotograf": "C. Dahl"}) + "\n")
    (item,) = read_manifest(
        str(tmp_path / "m.jsonl"), columns={"item_id": "id", "source_uri": "file", "creator": "Fotograf"}
    )
    assert (item.item_id, item.creator) == ("a", "C. Dahl")
    pq.write_table(pa.table({"id": ["b"], "file": ["b.png"], "Titel": ["Kaj"]}), tmp_path / "m.parquet")
    (item,) = read_manifest(
        str(tmp_path / "m.parquet"), columns={"item_id": "id", "source_uri": "file", "title": "Titel"}
    )
    assert (item.item_id, item.title) == ("b", "Kaj")
    iiif = Path(__file__).parent / "fixtures" / "iiif" / "v3-manifest.json"
    plate = read_manifest(str(iiif), columns={"creator": "Photographer"})[0]
    assert plate.creator == "A. Berg" and plate.descriptive()["iiif_canvas"].endswith("/canvas/1")


def test_derivatives_carry_title_creator_date_and_rights_in_xmp(described_run):
    """Read back by exiv2 (a real XMP parser), not by searching the bytes."""
    derivatives = sorted(p for p in described_run.iterdir() if p.suffix in (".jpg", ".png"))
    assert len(derivatives) == 2
    by_name = {}
    for path in derivatives:
        with pyexiv2.Image(str(path)) as image:
            by_name[path.stem] = image.read_xmp()
    first, second = by_name["item%2F0"], by_name["item%2F1"]
    assert first["Xmp.dc.title"] == {'lang="x-default"': "Harbour & boats <1927>"}
    assert first["Xmp.dc.creator"] == ["Anna Ström"] and first["Xmp.dc.date"] == ["1927"]
    assert first["Xmp.dc.rights"] == {'lang="x-default"': NOC} and first["Xmp.xmpRights.WebStatement"] == NOC
    assert first["Xmp.patina.collection"] == "Harbour views"
    assert "Xmp.dc.creator" not in second and second["Xmp.xmpRights.WebStatement"] == CC_BY
    assert "xmpMM" in " ".join(first)  # the processing history is still there beside them


def test_provenance_premis_and_report_carry_them(described_run):
    table = read_provenance(str(described_run))
    reads = {r["item_id"]: json.loads(r["descriptive"]) for r in table.to_pylist() if r["stage"] == "read"}
    assert reads["lost"]["title"] == "A lost print"  # a failed item keeps its description
    assert all(r["descriptive"] is None for r in table.to_pylist() if r["stage"] != "read")

    document = premis_document(table)
    etree.XMLSchema(etree.parse(str(XSD))).assertValid(etree.fromstring(document))
    root = ET.fromstring(document)
    objects = {o.find(f"{P}objectIdentifier/{P}objectIdentifierValue").text: o for o in root.iter(f"{P}object")}
    master = next(o for uri, o in objects.items() if uri.endswith("scan-0.jpg"))
    properties = {
        p.find(f"{P}significantPropertiesType").text: p.find(f"{P}significantPropertiesValue").text
        for p in master.iter(f"{P}significantProperties")
    }
    assert properties == {
        "title": "Harbour & boats <1927>",
        "date": "1927",
        "creator": "Anna Ström",
        "collection": "Harbour views",
    }
    statements = {
        r.find(f".//{P}rightsBasis").text: [x.text for x in r.iter(f"{P}linkingObjectIdentifierValue")]
        for r in root.iter(f"{P}rightsStatement")
    }
    assert set(statements) == {"license", "other"}  # CC BY a licence; the rights statement URI "other"
    assert any(uri.endswith("item%2F1.png") for uri in statements["license"])
    assert len(statements["other"]) == 2  # scan-0's master and derivative (the lost print has no object)

    html = Path(write_report(str(described_run), "20260301T000000Z-dddddd")).read_text()
    assert "Harbour &amp; boats &lt;1927&gt; — Anna Ström, 1927" in html
    assert f"<a href='{NOC}'>{NOC}</a>" in html and "Rights reserved by the family" in html
