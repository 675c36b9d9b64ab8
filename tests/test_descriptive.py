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
    master = objects["master/item/0"]  # a local master: by item id and role, never by its path
    assert str(described_run.parent) not in document.decode() and "file://" not in document.decode()
    assert {t.text for t in root.iter(f"{P}objectIdentifierType")} == {"local"}
    with_paths = ET.fromstring(premis_document(table, include_paths=True))  # asked for: file:// URIs, typed URI
    located = {o.findtext(f"{P}objectIdentifier/{P}objectIdentifierValue") for o in with_paths.iter(f"{P}object")}
    assert any(v.startswith("file:///") and v.endswith("/scan-0.jpg") for v in located)
    assert {t.text for t in with_paths.iter(f"{P}objectIdentifierType")} == {"URI"}
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
    assert "derivative/item/1" in statements["license"]
    assert len(statements["other"]) == 2  # scan-0's master and derivative (the lost print has no object)

    html = Path(write_report(str(described_run), "20260301T000000Z-dddddd")).read_text()
    assert "Harbour &amp; boats &lt;1927&gt; — Anna Ström, 1927" in html
    assert f"<a href='{NOC}'>{NOC}</a>" in html and "Rights reserved by the family" in html


def _check_presentation_3(document: dict) -> None:
    """The Presentation 3 rules a viewer relies on: what must be there, of which type, pointing where."""

    def language_map(value):
        assert isinstance(value, dict) and value and all(isinstance(v, list) and v for v in value.values()), value

    assert document["@context"] == "http://iiif.io/api/presentation/3/context.json"
    assert document["type"] == "Manifest" and document["id"].startswith(("http://", "https://", "file://"))
    language_map(document["label"])
    assert document["items"], "a manifest has at least one canvas"
    ids = [c["id"] for c in document["items"]]
    assert len(set(ids)) == len(ids), "canvas ids are unique"
    for canvas in document["items"]:
        assert canvas["type"] == "Canvas" and canvas["width"] > 0 and canvas["height"] > 0
        language_map(canvas["label"])
        for pair in canvas.get("metadata", []):
            language_map(pair["label"])
            language_map(pair["value"])
        if "rights" in canvas:
            assert canvas["rights"].startswith(
                (
                    "http://creativecommons.org/",
                    "https://creativecommons.org/",
                    "http://rightsstatements.org/",
                    "https://rightsstatements.org/",
                )
            )
        (page,) = canvas["items"]
        assert page["type"] == "AnnotationPage"
        (annotation,) = page["items"]
        assert annotation["type"] == "Annotation" and annotation["motivation"] == "painting"
        assert annotation["target"] == canvas["id"]
        body = annotation["body"]
        assert body["type"] == "Image" and body["format"].startswith("image/")
        assert (body["width"], body["height"]) == (canvas["width"], canvas["height"])


def test_iiif_manifest_of_the_derivatives_publishes_them_with_their_rights(described_run, http_server):
    import shutil

    from patina.flows.cli import main
    from patina.manifests.storage import read_bytes

    url, root = http_server
    published = root / "published"
    assert main(["iiif", str(described_run), "--base-url", f"{url}/published"]) == 0
    shutil.copytree(described_run, published)  # as an archive publishes OUT on its web server
    document = json.loads((published / "_iiif" / "manifest.json").read_text())
    _check_presentation_3(document)
    first, second = document["items"]
    assert first["label"] == {"none": ["Harbour & boats <1927>"]} and first["rights"] == NOC
    assert second["rights"] == CC_BY and "rights" not in document  # two statements: per canvas only
    assert first["navDate"] == "1927-01-01T00:00:00Z" and "navDate" not in second  # "c. 1930" is no date
    pairs = {p["label"]["en"][0]: p["value"]["none"][0] for p in first["metadata"]}
    assert pairs["Creator"] == "Anna Ström" and pairs["Collection"] == "Harbour views"
    assert pairs["Restoration"].startswith("assess: classical/assess@2; enhance: classical/tone@3")
    assert pairs["Master"] == "item/0 (held by the archive; not published)"
    text = (published / "_iiif" / "manifest.json").read_text()
    assert "file://" not in text and str(described_run.parent) not in text  # no local path is published
    assert [s["label"]["en"][0] for s in first["seeAlso"]] == ["processing report of the run"]
    assert main(["iiif", str(described_run), "--base-url", f"{url}/published", "--include-master-paths"]) == 0
    asked = json.loads((described_run / "_iiif" / "manifest.json").read_text())["items"][0]
    assert asked["seeAlso"][0]["id"].startswith("file:///") and asked["seeAlso"][0]["id"].endswith("/scan-0.jpg")

    # A IIIF reader (patina's own) takes the published manifest over HTTP: every canvas, its title,
    # and the derivative's very bytes behind each image URL (keys with their own escapes included)
    items = read_manifest(f"{url}/published/_iiif/manifest.json")
    assert [item.title for item in items] == ["Harbour & boats <1927>", "Quay"]
    for item, name in zip(items, ("item%2F0.jpg", "item%2F1.png"), strict=True):
        assert read_bytes(item.source_uri) == (described_run / name).read_bytes()

    service = "https://images.example.org/iiif/3"
    run = "20260301T000000Z-dddddd"
    assert main(["iiif", str(described_run), "--base-url", url, "--run", run, "--image-service", service]) == 0
    document = json.loads((described_run / "_iiif" / f"{run}.json").read_text())
    _check_presentation_3(document)
    body = document["items"][0]["items"][0]["items"][0]["body"]
    assert body["service"] == [{"id": f"{service}/item%252F0.jpg", "type": "ImageService3", "profile": "level1"}]
    assert main(["iiif", str(described_run), "--base-url", url, "--run", "no-such-run"]) == 2


MIRADOR = "mirador@3.4.3"


def _chromium() -> str | None:
    import shutil

    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _mirador_js(cache: Path) -> Path | None:
    """Mirador's standalone bundle from the npm registry (``npm pack``: one 3 MB tarball), cached."""
    import os
    import shutil
    import subprocess
    import tarfile

    given = os.environ.get("PATINA_MIRADOR_JS")
    if given:
        return Path(given)
    bundle = cache / MIRADOR / "mirador.min.js"
    if bundle.exists():
        return bundle
    if shutil.which("npm") is None:
        return None
    work = cache / "download"
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "pack", MIRADOR, "--silent"], cwd=work, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        return None
    with tarfile.open(work / done.stdout.strip().splitlines()[-1]) as tar:
        data = tar.extractfile("package/dist/mirador.min.js").read()
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.write_bytes(data)
    return bundle


@pytest.mark.slow
def test_the_manifest_opens_in_mirador(described_run, http_server):
    """Mirador (from the npm registry) in headless Chromium loads the manifest and shows its canvases."""
    import shutil
    import subprocess

    from patina.flows.cli import main

    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    bundle = _mirador_js(Path.home() / ".cache" / "patina" / "test-viewer")
    if bundle is None:
        pytest.skip(f"{MIRADOR} could not be fetched from the npm registry")
    url, root = http_server
    site = root / "mirador-site"
    assert main(["iiif", str(described_run), "--base-url", f"{url}/mirador-site"]) == 0
    shutil.copytree(described_run, site)
    shutil.copy(bundle, site / "mirador.min.js")
    (site / "viewer.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'></head><body><div id='m'></div>"
        "<script src='mirador.min.js'></script><script>"
        f"Mirador.viewer({{id: 'm', windows: [{{manifestId: '{url}/mirador-site/_iiif/manifest.json', "
        "thumbnailNavigationPosition: 'far-bottom'}]});"
        "</script></body></html>"
    )
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    flags += ["--disable-component-update", "--disable-sync", f"--user-data-dir={root / 'chromium-profile'}"]
    done = subprocess.run(
        [chromium, *flags, "--virtual-time-budget=20000", "--dump-dom", f"{url}/mirador-site/viewer.html"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom = done.stdout
    assert "mirador-viewer" in dom, done.stderr[-2000:]
    assert "Harbour views" in dom  # the manifest's label in the window's title bar
    assert "Harbour &amp; boats &lt;1927&gt;" in dom  # the first canvas's label
    assert "1 of 2" in dom and "Quay" in dom  # both canvases, the second as a thumbnail
    assert f"{url}/mirador-site/item%252F1.png" in dom  # its image, requested from the derivative's URL
    assert "mirador-window" in dom and "error" not in dom.lower().split("mirador-viewer", 1)[1][:200]
