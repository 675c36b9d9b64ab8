"""JSON Lines, Parquet and IIIF v2/v3 manifests; URI schemes; manifests over HTTP."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from patina.manifests.items import ManifestError
from patina.manifests.readers import read_manifest

FIXTURES = Path(__file__).parent / "fixtures" / "iiif"


def test_iiif_v2_manifest_resolves_image_services_and_keeps_labels():
    items = read_manifest(str(FIXTURES / "v2-manifest.json"))
    assert [i.item_id for i in items] == [
        "https://archive.example.org/iiif/album-7/canvas/p1",
        "https://archive.example.org/iiif/album-7/canvas/p2",
    ]
    first, second = items
    # the service lists tif: the lossless full-size request, not the JPEG derivative
    assert first.source_uri == "https://images.example.org/iiif/2/album7-p1/full/full/0/default.tif"
    assert second.source_uri == "https://images.example.org/files/album7-p2.tif"  # no service: the resource
    assert (first.title, first.collection, first.date) == (
        "Page 1: wedding portrait",
        "Family album no. 7",
        "1921-06-18",
    )
    assert second.title == "Page 2" and second.date == "1921-01-01T00:00:00Z"  # the manifest's navDate
    assert first.rights == "https://creativecommons.org/publicdomain/mark/1.0/"
    assert first.creator == "Studio Lindqvist" and first.metadata["Place"] == "Uppsala"  # a photographer creates
    assert first.metadata["iiif_manifest"] == "https://archive.example.org/iiif/album-7/manifest.json"


def test_iiif_v3_manifest_handles_language_maps_choices_and_several_images_per_canvas():
    items = read_manifest(str(FIXTURES / "v3-manifest.json"))
    canvas = "https://archive.example.org/iiif/3/glass-plates/canvas/"
    assert [i.item_id for i in items] == [f"{canvas}1", f"{canvas}2", f"{canvas}2#2"]
    plate1, plate2, verso = items
    assert plate1.source_uri == "https://images.example.org/iiif/3/plate-1/full/max/0/default.jpg"
    assert plate2.source_uri == "https://images.example.org/iiif/2/plate-2-natural/full/full/0/default.jpg"
    assert verso.source_uri == str(FIXTURES / "verso" / "plate-2-verso.png")  # relative to the manifest
    assert (plate1.title, plate1.collection, plate1.date) == (
        "Harbour, winter",
        "Glass plate negatives, box 12",
        "1908-02-01T00:00:00Z",
    )
    assert plate2.title == "Plate 2" and plate1.rights == "http://creativecommons.org/licenses/by/4.0/"
    assert plate1.creator == "A. Berg" and "Photographer" not in plate1.metadata


def _v3(tmp_path, canvases, name="m.json", **extra):
    doc = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": "m",
        "type": "Manifest",
        "items": canvases,
    }
    doc.update(extra)
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def _canvas(cid, body):
    annotation = {"id": f"{cid}/a", "type": "Annotation", "motivation": "painting", "body": body}
    return {"id": cid, "type": "Canvas", "items": [{"id": f"{cid}/p", "type": "AnnotationPage", "items": [annotation]}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"@context": "http://iiif.io/api/presentation/3/context.json", "items": [', "malformed JSON at line 1"),
        ('{"@context": "http://example.org/other", "items": []}', "not a IIIF Presentation v2 or v3 manifest"),
        ("[1, 2]", "a IIIF manifest is a JSON object"),
        ('{"@context": "http://iiif.io/api/presentation/3/context.json", "type": "Collection"}', "a IIIF Collection"),
        ('{"@context": "http://iiif.io/api/presentation/2/context.json", "sequences": []}', "has no sequences"),
        (
            '{"@context": "http://iiif.io/api/presentation/3/context.json", "items": {"id": 1}}',
            "items must be a JSON list",
        ),
        ('{"@context": "http://iiif.io/api/presentation/3/context.json", "items": []}', "has no canvases"),
    ],
)
def test_malformed_iiif_is_refused_with_the_place_named(tmp_path, document, message):
    path = tmp_path / "manifest.json"
    path.write_text(document)
    with pytest.raises(ManifestError, match=message):
        read_manifest(str(path))


def test_iiif_canvas_errors_name_the_canvas(tmp_path):
    no_image = {"id": "c/9", "type": "Canvas", "items": []}
    with pytest.raises(ManifestError, match=r"canvas 2 \(c/9\): canvas has no painting image"):
        read_manifest(_v3(tmp_path, [_canvas("c/1", {"id": "a.jpg", "type": "Image"}), no_image]))
    with pytest.raises(ManifestError, match=r"canvas 1 \(c/1\): painting annotation has no image resource"):
        read_manifest(_v3(tmp_path, [_canvas("c/1", "just text")]))
    twice = [_canvas("c/1", {"id": "a.jpg", "type": "Image"}), _canvas("c/1", {"id": "b.jpg", "type": "Image"})]
    with pytest.raises(ManifestError, match="duplicate item_id 'c/1'"):
        read_manifest(_v3(tmp_path, twice))


def test_jsonl_manifest_with_metadata_and_line_numbered_errors(tmp_path):
    good = tmp_path / "m.jsonl"
    good.write_text(
        '{"item_id": "a", "source_uri": "a.tif", "title": "A", "rights": "CC0", "box": 3, "tags": ["x"]}\n'
        "\n"
        '{"item_id": "b", "source_uri": "s3://bucket/b.jpg", "md5": "' + "c" * 32 + '"}\n'
    )
    a, b = read_manifest(str(good))
    assert a.source_uri == str(tmp_path / "a.tif") and (a.title, a.rights) == ("A", "CC0")
    assert a.metadata == {"box": 3, "tags": ["x"]} and b.checksum == ("md5", "c" * 32)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "a", "source_uri": "a.tif"}\n{"item_id": "b", source_uri: 1}\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl line 2: malformed JSON"):
        read_manifest(str(bad))
    bad.write_text('{"item_id": "a", "source_uri": "a.tif"}\n["b"]\n')
    with pytest.raises(ManifestError, match=r"line 2: expected a JSON object, got list"):
        read_manifest(str(bad))
    bad.write_text('{"item_id": "a", "source_uri": "a.tif"}\n{"item_id": "a", "source_uri": "b.tif"}\n')
    with pytest.raises(ManifestError, match=r"line 2: duplicate item_id 'a' \(first at .*line 1\)"):
        read_manifest(str(bad))


def test_parquet_manifest_and_its_errors(tmp_path):
    path = tmp_path / "m.parquet"
    table = pa.table(
        {"item_id": ["a", "b"], "source_uri": ["x/a.png", "b.png"], "collection": ["C", None], "year": [1900, 1901]}
    )
    pq.write_table(table, path)
    a, b = read_manifest(str(path))
    assert a.source_uri == str(tmp_path / "x" / "a.png") and a.collection == "C" and a.metadata == {"year": 1900}
    assert b.collection is None
    pq.write_table(pa.table({"id": ["a"], "source_uri": ["a.png"]}), path)
    with pytest.raises(ManifestError, match=r"missing column\(s\) \['item_id'\]"):
        read_manifest(str(path))
    pq.write_table(pa.table({"item_id": ["a", ""], "source_uri": ["a.png", "b.png"]}), path)
    with pytest.raises(ManifestError, match="row 2: item_id is empty"):
        read_manifest(str(path))
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(ManifestError, match="not a readable Parquet file"):
        read_manifest(str(path))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("nosuchscheme://host/a.jpg", "unsupported URI scheme 'nosuchscheme'"),
        ("gs://bucket/a.jpg", "scheme 'gs' needs a library that is not installed"),
    ],
)
def test_sources_with_schemes_patina_cannot_read_are_refused(tmp_path, uri, message):
    path = tmp_path / "m.csv"
    path.write_text(f"item_id,source_uri\nok,a.jpg\nbad,{uri}\n")
    try:
        import gcsfs  # noqa: F401

        if uri.startswith("gs://"):
            pytest.skip("gcsfs is installed here: gs:// is readable")
    except ImportError:
        pass
    with pytest.raises(ManifestError, match=rf"line 3: item 'bad': .*{message}"):
        read_manifest(str(path))
