import json
import os
import stat

import pytest

from patina.manifests.items import ManifestError
from patina.manifests.locations import check_output_location
from patina.manifests.readers import read_manifest
from patina.manifests.storage import atomic_write, output_key, resolve_uri


def _write(tmp_path, text, name="manifest.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_items_resolve_relative_uris_and_keep_metadata(tmp_path):
    sha = "a" * 64
    path = _write(
        tmp_path,
        f"item_id,source_uri,checksum,title,date\n"
        f"one,scans/one.tif,sha256:{sha},First,1901\n"
        f"two,/abs/two.jpg,,Second,\n"
        f"three,s3://bucket/three.png,md5:{'b' * 32},,\n",
    )
    items = read_manifest(path)
    assert [i.item_id for i in items] == ["one", "two", "three"]
    assert items[0].source_uri == str(tmp_path / "scans" / "one.tif")
    assert items[0].checksum == ("sha256", sha) and (items[0].title, items[0].date) == ("First", "1901")
    assert items[1].metadata == {} and items[1].title == "Second" and items[1].date is None
    assert items[1].source_uri == "/abs/two.jpg" and items[1].checksum is None
    assert items[2].source_uri == "s3://bucket/three.png" and items[2].checksum == ("md5", "b" * 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,path\nx,y\n", r"missing column\(s\) \['item_id', 'source_uri'\]"),
        ("item_id,file\nx,y\n", r"map them in pipeline.toml: \[manifest.columns\] source_uri = \"file\""),
        ("num,scan\nx,y\n", r'item_id = "YOUR COLUMN", source_uri = "YOUR COLUMN"'),
        ("item_id,source_uri\na,a.jpg\nb,b.jpg\na,c.jpg\n", r"line 4: duplicate item_id 'a' \(first at .*line 2\)"),
        ("item_id,source_uri\n,a.jpg\n", "line 2: item_id is empty"),
        ("item_id,source_uri\na,\n", "line 2: source_uri is empty for item 'a'"),
        ("item_id,source_uri,checksum\na,a.jpg,sha256:xyz\n", "checksum 'sha256:xyz' is neither"),
        ("item_id,source_uri\na,a.jpg,extra\n", "line 2: more fields than the header"),
        ("item_id,source_uri\n", "lists no items"),
        ('item_id,source_uri\n"a,a.jpg\n', "malformed CSV"),
    ],
)
def test_csv_errors_name_the_line_and_cause(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message):
        read_manifest(_write(tmp_path, text))


def test_unsupported_and_missing_manifests(tmp_path):
    with pytest.raises(ManifestError, match=r"unsupported manifest type '\.xlsx'"):
        read_manifest(_write(tmp_path, "x", "m.xlsx"))
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(str(tmp_path / "nope.csv"))


def test_relative_uris_resolve_against_remote_manifests():
    assert resolve_uri("a/b.jpg", "s3://bucket/coll") == "s3://bucket/coll/a/b.jpg"
    assert resolve_uri("../x.jpg", "s3://bucket/coll/sub") == "s3://bucket/coll/x.jpg"


@pytest.mark.parametrize("item_id", ["../../etc/passwd", "a/b", "..", ".", "a b%", "ünï", "x\\y", "/abs"])
def test_output_keys_cannot_escape_the_prefix(item_id):
    key = output_key(item_id)
    assert "/" not in key and "\\" not in key and not key.startswith(".")


def test_output_keys_are_unique_for_distinct_ids():
    ids = ["a/b", "a%2Fb", "a_b", "a.b", "a%2Eb", "A.B", "a b", "a+b"]
    assert len({output_key(i) for i in ids}) == len(ids)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write(str(target), b"first")
    atomic_write(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["out.bin"]


@pytest.mark.parametrize(
    ("output", "refused"),
    [
        ("/archive/scans", True),
        ("/archive/scans/", True),
        ("/archive/scans/restored", True),
        ("/archive/scans/../scans/x", True),
        ("/archive/restored", False),
        ("/archive/scans-restored", False),  # a sibling whose name only starts alike
        ("s3://bucket/masters/out", True),
        ("s3://bucket/derivatives", False),
    ],
)
def test_output_inside_a_masters_folder_is_refused(output, refused):
    sources = ["/archive/scans/a.tif", "/archive/scans/b.tif", "s3://bucket/masters/c.jpg"]
    if refused:
        with pytest.raises(ValueError, match="holds masters"):
            check_output_location(output, sources)
    else:
        check_output_location(output, sources)


def test_temporaries_of_dead_writers_are_removed_only_from_this_run(tmp_path):
    import os
    import time

    from patina.manifests.storage import remove_temporaries

    old, new, kept = tmp_path / ".tmp-old", tmp_path / ".tmp-new", tmp_path / "item.png"
    for path in (old, new, kept):
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # another, earlier run's
    assert remove_temporaries(str(tmp_path), since=time.time() - 60) == 1
    assert old.exists() and not new.exists() and kept.exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o027])
def test_atomic_write_gives_the_mode_a_plain_open_gives_under_the_umask(tmp_path, umask):
    from patina.models.atomic_files import atomic_bytes

    previous = os.umask(umask)
    try:
        atomic_bytes(tmp_path / "model-card.json", b"{}")  # the models' own writer too
        atomic_write(str(tmp_path / "written.bin"), b"data")
        with open(tmp_path / "plain.bin", "wb") as handle:
            handle.write(b"data")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["written.bin", "plain.bin", "model-card.json"], 0o666 & ~umask)


def test_an_id_too_long_for_a_file_name_is_refused_when_the_manifest_is_read(tmp_path):
    from patina.manifests.storage import MAX_KEY_LENGTH

    (tmp_path / "m.csv").write_text(f"item_id,source_uri\nok,a.jpg\n{'x' * (MAX_KEY_LENGTH + 1)},b.jpg\n")
    with pytest.raises(ManifestError, match=r"m.csv line 3: item_id 'x+'\.\.\. is too long"):
        read_manifest(str(tmp_path / "m.csv"))
    (tmp_path / "n.csv").write_text(f"item_id,source_uri\n{'x' * MAX_KEY_LENGTH},b.jpg\n")
    assert read_manifest(str(tmp_path / "n.csv"))[0].item_id == "x" * MAX_KEY_LENGTH  # the longest that fits


def test_a_source_uri_that_is_not_text_is_refused_naming_the_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"item_id": ["a", "b"], "source_uri": [17, 18]}), tmp_path / "m.parquet")
    with pytest.raises(ManifestError, match="row 1: source_uri is int 17, not text"):
        read_manifest(str(tmp_path / "m.parquet"))
    pq.write_table(pa.table({"item_id": [7], "source_uri": ["a.jpg"]}), tmp_path / "ints.parquet")
    assert read_manifest(str(tmp_path / "ints.parquet"))[0].item_id == "7"  # integer ids are ids


def test_other_manifest_columns_are_kept_with_the_descriptive_fields(tmp_path):
    from patina.actors.planning import items_table

    (tmp_path / "m.csv").write_text("item_id,source_uri,Title,accession,box\na,a.jpg,Harbour,1987.44.2,\n")
    item = read_manifest(str(tmp_path / "m.csv"))[0]
    assert item.descriptive() == {"title": "Harbour", "metadata": {"accession": "1987.44.2"}}
    assert json.loads(items_table([("line 2", item)])["descriptive"][0].as_py())["metadata"] == {
        "accession": "1987.44.2"
    }  # what the read step records in the provenance
