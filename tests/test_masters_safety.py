"""Masters are never overwritten, however the output and the masters' folder are spelled.

Each alias is tried against the real flow (real Prefect server, real Ray) with every master
hashed before and after; the writer's own wall is tried with the planner's check out of the way.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from patina.actors.io_tasks import write_item
from patina.actors.item_state import ItemState
from patina.flows.config import ConfigError, PipelineConfig
from patina.flows.restore import restore_collection
from patina.manifests.locations import (
    MasterTarget,
    OutputInsideMasters,
    check_output_location,
    real_location,
    refuse_master_target,
)
from patina.models.image import pixels_to_transport, to_uint8
from tests.conftest import make_collection
from tests.helpers import scene


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _rewrite_manifest(manifest: Path, source) -> Path:
    """The manifest with each source_uri replaced by ``source(original)``."""
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["source_uri"] = source(row["source_uri"])
    out = manifest.with_name("aliased.csv")
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def _alias(kind: str, root: Path) -> tuple[Path, str, Path]:
    """(manifest, output URI, masters' folder) for one way of reaching the masters' folder twice."""
    masters = root / "masters"
    manifest = make_collection(masters, count=3, bad=False)
    if kind == "output-symlink":
        (root / "link").symlink_to(masters, target_is_directory=True)
        return manifest, str(root / "link"), masters
    if kind == "manifest-through-symlink":
        (root / "link").symlink_to(masters, target_is_directory=True)
        return root / "link" / manifest.name, str(masters), masters
    if kind == "file-uri-masters":
        return _rewrite_manifest(manifest, lambda name: (masters / name).as_uri()), str(masters), masters
    if kind == "file-uri-output":
        return manifest, (masters.as_uri() + "/"), masters
    if kind == "dot-dot-output":
        return manifest, str(root / "elsewhere" / ".." / "masters"), masters
    if kind == "relative-output":  # the test runs in root: the flow resolves what it is given
        return manifest, "masters", masters
    if kind == "master-symlink-into-output":
        out = root / "out"
        out.mkdir()
        (out / "scan-0.jpg").write_bytes((masters / "scan-0.jpg").read_bytes())
        (masters / "scan-0.jpg").unlink()
        (masters / "scan-0.jpg").symlink_to(out / "scan-0.jpg")  # the master's bytes live in the output
        return manifest, str(out), out
    raise AssertionError(kind)


ALIASES = [
    "output-symlink",
    "manifest-through-symlink",
    "file-uri-masters",
    "file-uri-output",
    "dot-dot-output",
    "relative-output",
    "master-symlink-into-output",
]


@pytest.mark.parametrize("kind", ALIASES)
def test_a_run_whose_output_reaches_the_masters_another_way_is_refused(prefect_server, tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest, output, masters = _alias(kind, tmp_path)
    before = _hashes(masters)
    with pytest.raises(ConfigError, match="masters"):
        restore_collection(str(manifest), output, PipelineConfig())
    assert _hashes(masters) == before  # every master byte-identical, nothing added beside them


def test_the_same_bucket_spelled_over_its_http_endpoint_is_one_location():
    options = {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    assert real_location("http://127.0.0.1:9000/archive/scans/a.tif", options) == "s3://archive/scans/a.tif"
    assert real_location("s3a://archive/scans/a.tif") == "s3://archive/scans/a.tif"
    assert real_location("https://archive.s3.eu-west-1.amazonaws.com/scans/a.tif") == "s3://archive/scans/a.tif"
    assert real_location("https://s3.amazonaws.com/archive/scans/./a.tif") == "s3://archive/scans/a.tif"
    with pytest.raises(OutputInsideMasters, match="holds masters"):
        check_output_location("s3://archive/scans", ["http://127.0.0.1:9000/archive/scans/a.tif"], options)
    with pytest.raises(OutputInsideMasters):
        check_output_location("s3a://archive/scans/out", ["s3://archive/scans/a.tif"])
    check_output_location("s3://archive/derivatives", ["http://127.0.0.1:9000/archive/scans/a.tif"], options)


def test_masters_in_a_subfolder_of_the_output_are_allowed_but_not_where_patina_writes(tmp_path):
    check_output_location(str(tmp_path), [str(tmp_path / "masters" / "a.tif")])  # derivative names hold no '/'
    for where in ("a.tif", "_provenance/a.tif"):
        with pytest.raises(OutputInsideMasters):
            check_output_location(str(tmp_path), [str(tmp_path / where)])


def test_the_writer_refuses_to_replace_a_master_even_when_the_plan_let_it_through(tmp_path):
    """The second wall: a row whose derivative would land on its master, or beside it, fails that item."""
    masters = tmp_path / "masters"
    manifest = make_collection(masters, count=1, bad=False)
    before = _hashes(masters)
    settings = PipelineConfig().run_settings("wall", str(masters))  # the output IS the masters' folder
    row = {
        "item_id": "scan-0",  # its derivative would be masters/scan-0.jpg: the master itself
        "source_uri": str(masters / "scan-0.jpg"),
        "checksum": "",
        "resume_index": 0,
        "resume_uri": "",
        "descriptive": "",
        "image": pixels_to_transport(to_uint8(scene(16, 16))),
        "mask": b"",
        "exif": b"",
        "state": ItemState(source_format="JPEG").to_json(),
    }
    state = ItemState.from_json(write_item(row, settings)["state"])
    write = state.records[-1]
    assert (write.status, write.error_type) == ("failed", "MasterTarget")
    assert "masters are never replaced" in write.error_message
    assert _hashes(masters) == before and manifest.exists()
    with pytest.raises(MasterTarget):
        refuse_master_target((tmp_path / "link-free" / "x.png").as_uri(), str(tmp_path / "link-free" / "y.jpg"))


def test_patina_run_into_the_masters_folder_writes_nothing_there_and_says_why_at_once(tmp_path):
    """The CLI looks at the manifest's first items before its log (the first file a run writes) exists."""
    import subprocess
    import sys
    import time

    masters = tmp_path / "masters"
    manifest = make_collection(masters, count=2, bad=False)
    (tmp_path / "link").symlink_to(masters, target_is_directory=True)
    before = sorted(p.name for p in masters.iterdir())
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "patina.flows.cli", "run", str(manifest), "-o", str(tmp_path / "link")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "holds masters" in done.stderr, done.stderr
    assert sorted(p.name for p in masters.iterdir()) == before  # no _logs, no _lock beside the masters
    assert time.monotonic() - started < 60  # said before Prefect's server or Ray start
