"""The bad-input catalogue: every awkward master gets a clear per-item outcome in one real run.

One collection holds all cases; one pipeline run on a real local Ray restores it. Each case
then checks its own provenance rows and derivative: failures are rows with a clear message
and no output, the rest of the run completes, nothing half-written is left behind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from patina.actors.pipeline import run_pipeline
from patina.flows.config import parse_config
from patina.manifests.items import ManifestError
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import read_manifest
from patina.manifests.storage import output_key
from tests.helpers import DEFAULT_STEPS, scene

MAX_PIXELS = 4000


def _photo(h=36, w=48, seed=0) -> np.ndarray:
    return np.rint(scene(h, w, seed) * 255).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    sink = io.BytesIO()
    image.save(sink, format=fmt, **kwargs)
    return sink.getvalue()


def _jpeg(**kwargs) -> bytes:
    return _save(Image.fromarray(_photo()), "JPEG", **kwargs)


def _png() -> bytes:
    return _save(Image.fromarray(_photo(seed=1)), "PNG")


def _cmyk() -> bytes:
    return _save(Image.fromarray(_photo(seed=2)).convert("CMYK"), "JPEG")


def _palette_alpha() -> bytes:
    image = Image.fromarray(_photo(seed=3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _save(image, "PNG", transparency=0)


def _gray16_tiff() -> bytes:
    sink = io.BytesIO()
    tifffile.imwrite(sink, (np.linspace(0, 65535, 30 * 40).reshape(30, 40)).astype(np.uint16))
    return sink.getvalue()


def _rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(Image.fromarray(_photo(20, 50, seed=4)), "JPEG", exif=exif)


def _gif() -> bytes:
    frames = [Image.fromarray(_photo(seed=s)).convert("P") for s in (5, 6, 7)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _multipage_tiff() -> bytes:
    sink = io.BytesIO()
    with tifffile.TiffWriter(sink) as tif:
        for s in (8, 9):
            tif.write(_photo(seed=s), photometric="rgb")
    return sink.getvalue()


@dataclass(frozen=True)
class Case:
    item_id: str
    data: bytes | None  # None: no such object
    name: str  # file name of the master
    status: str  # ok | failed
    error: str = ""  # error_type of the failed row
    message: str = ""  # part of error_message, or of the read step's warnings for ok items
    checksum: str = ""
    where: str = "file"  # file | http | forbidden
    out_suffix: str = ""


JPEG = _jpeg()
CASES = [
    Case("zero-byte", b"", "zero.jpg", "failed", "DecodeError", "file is empty (0 bytes)"),
    Case("truncated-jpeg", JPEG[: len(JPEG) // 2], "trunc.jpg", "failed", "DecodeError", "cannot decode image"),
    Case("truncated-png", _png()[:300], "trunc.png", "failed", "DecodeError", "cannot decode image"),
    Case("not-an-image", b"%PDF-1.4 this is a PDF, not a scan", "doc.tif", "failed", "DecodeError", "not a recognised"),
    Case("wrong-extension", _png(), "really-a-png.jpg", "ok", out_suffix=".png"),
    Case("cmyk-jpeg", _cmyk(), "cmyk.jpg", "ok", out_suffix=".jpg"),
    Case("palette-alpha", _palette_alpha(), "palette.png", "ok", out_suffix=".png"),
    Case("gray16-tiff", _gray16_tiff(), "gray16.tif", "ok", out_suffix=".tif"),
    Case("exif-rotated", _rotated(), "rotated.jpg", "ok", out_suffix=".jpg"),
    Case("animated-gif", _gif(), "anim.gif", "ok", message="3 frames (animated); only the first", out_suffix=".png"),
    Case("multi-page-tiff", _multipage_tiff(), "pages.tif", "ok", message="2 pages; only the first", out_suffix=".tif"),
    Case(
        "over-limit",
        _save(Image.fromarray(_photo(80, 80)), "PNG"),
        "huge.png",
        "failed",
        "ImageTooLarge",
        "6400 pixels exceeds the limit of 4000",
    ),
    Case("missing-object", None, "gone.jpg", "failed", "SourceUnavailable", "source not found"),
    Case("http-missing", None, "gone-too.jpg", "failed", "SourceUnavailable", "source not found", where="http"),
    Case(
        "permission-denied",
        _jpeg(),
        "secret.jpg",
        "failed",
        "SourceUnavailable",
        "permission denied",
        where="forbidden",
    ),
    Case(
        "checksum-mismatch",
        _jpeg(quality=80),
        "tampered.jpg",
        "failed",
        "ChecksumMismatch",
        "sha256 mismatch",
        checksum="sha256:" + "0" * 64,
    ),
    Case("../../escape", _jpeg(quality=70), "escape.jpg", "ok", out_suffix=".jpg"),
    Case("box/1/slash", _jpeg(quality=60), "slash.jpg", "ok", out_suffix=".jpg"),
    Case("over http", _jpeg(quality=90), "remote.jpg", "ok", where="http", out_suffix=".jpg"),
]


@pytest.fixture(scope="module")
def catalogue_run(ray_local, http_server, tmp_path_factory):
    base_url, http_root = http_server
    folder = tmp_path_factory.mktemp("catalogue") / "masters"
    folder.mkdir()
    rows = []
    for case in CASES:
        if case.where == "file":
            target, uri = folder / case.name, case.name
        else:
            sub = "forbidden" if case.where == "forbidden" else "public"
            (http_root / sub).mkdir(exist_ok=True)
            target, uri = http_root / sub / case.name, f"{base_url}/{sub}/{case.name}"
        if case.data is not None:
            target.write_bytes(case.data)
        rows.append({"item_id": case.item_id, "source_uri": uri, "checksum": case.checksum})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item_id", "source_uri", "checksum"])
        writer.writeheader()
        writer.writerows(rows)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    out = folder.parent / "out"
    config = parse_config({"input": {"max_pixels": MAX_PIXELS}})
    summary = run_pipeline(read_manifest(str(manifest)), config.run_settings("run-cat", str(out)))
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert after == before  # masters untouched
    return summary, read_provenance(str(out)).to_pylist(), out


def test_the_run_completes_every_item(catalogue_run):
    summary, rows, out = catalogue_run
    failing = sum(c.status == "failed" for c in CASES)
    assert (summary.total, summary.failed, summary.succeeded) == (len(CASES), failing, len(CASES) - failing)
    assert summary.status == "partial"
    assert len(rows) == len(CASES) * len(DEFAULT_STEPS)  # read, the stages, write: one row each, for every item
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    written = [p for p in out.iterdir() if p.is_file()]
    assert len(written) == len(CASES) - failing  # one derivative per restored item, none for failures


@pytest.mark.parametrize("case", CASES, ids=[c.item_id for c in CASES])
def test_case_outcome(catalogue_run, case):
    _, rows, out = catalogue_run
    mine = sorted((r for r in rows if r["item_id"] == case.item_id), key=lambda r: r["stage_index"])
    read, write = mine[0], mine[-1]
    if case.status == "failed":
        assert read["status"] == "failed" and read["error_type"] == case.error
        assert case.message in read["error_message"]
        assert [r["status"] for r in mine[1:]] == ["skipped"] * (len(DEFAULT_STEPS) - 1)
        assert not list(out.glob(output_key(case.item_id) + ".*"))
        return
    assert [r["status"] for r in mine if r["status"] == "failed"] == []
    path = Path(write["output_uri"])
    assert path.parent == out and path.name == output_key(case.item_id) + case.out_suffix  # inside OUT, safe name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == write["output_sha256"]
    decisions = json.loads(read["decisions"])
    if case.message:
        assert any(case.message in w for w in decisions["warnings"])
    image = Image.open(path)
    if case.item_id == "gray16-tiff":
        assert decisions["bit_depth"] == 16 and image.tag_v2[258] == (16, 16, 16)
    if case.item_id == "exif-rotated":
        assert image.size == (20, 50) and image.getexif().get(0x0112) == 1
    if case.item_id == "palette-alpha":
        pixels = np.asarray(image.convert("RGB"))
        assert pixels.shape == (36, 48, 3)
    if case.item_id == "cmyk-jpeg":
        assert image.mode == "RGB"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_local_master_is_a_clear_failure(ray_local, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "locked.jpg").write_bytes(_jpeg())
    (folder / "locked.jpg").chmod(0)
    (folder / "m.csv").write_text("item_id,source_uri\nlocked,locked.jpg\n")
    summary = run_pipeline(
        read_manifest(str(folder / "m.csv")), parse_config({}).run_settings("r", str(tmp_path / "o"))
    )
    assert (
        summary.failures[0].error_type == "SourceUnavailable"
        and "permission denied" in summary.failures[0].error_message
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("dup.csv", "item_id,source_uri\na,a.jpg\na,b.jpg\n", "duplicate item_id 'a'"),
        (
            "bad.json",
            '{"@context": "http://iiif.io/api/presentation/3/context.json", "items": [{"type": "Canvas"}]}',
            "canvas has no id",
        ),
        (
            "broken.json",
            '{"@context": "http://iiif.io/api/presentation/2/context.json", "sequences": [{"canvases": [}',
            "malformed JSON",
        ),
    ],
)
def test_manifest_level_errors_stop_before_anything_is_written(prefect_server, tmp_path, name, text, message):
    from patina.flows.restore import restore_collection

    (tmp_path / name).write_text(text)
    with pytest.raises(ManifestError, match=message):
        restore_collection(str(tmp_path / name), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_iiif_manifest_and_image_service_over_http(ray_local, http_server, tmp_path):
    """A IIIF v3 manifest without extension, its images from a (static) Image API 3 service."""
    base_url, root = http_server
    for n in (1, 2):
        target = root / "iiif" / f"img{n}" / "full" / "max" / "0"
        target.mkdir(parents=True)
        (target / "default.jpg").write_bytes(_save(Image.fromarray(_photo(seed=10 + n)), "JPEG"))
    canvases = []
    for n in (1, 2):
        service = [{"id": f"{base_url}/iiif/img{n}", "type": "ImageService3", "profile": "level0"}]
        body = {"id": f"{base_url}/iiif/img{n}/full/max/0/default.jpg", "type": "Image", "service": service}
        annotation = {"id": f"a{n}", "type": "Annotation", "motivation": "painting", "body": body}
        page = {"id": f"p{n}", "type": "AnnotationPage", "items": [annotation]}
        canvases.append({"id": f"{base_url}/c/{n}", "type": "Canvas", "label": {"en": [f"Plate {n}"]}, "items": [page]})
    manifest = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": "m",
        "type": "Manifest",
        "items": canvases,
    }
    (root / "iiif" / "manifest").write_text(json.dumps(manifest))
    items = read_manifest(f"{base_url}/iiif/manifest")
    assert [i.title for i in items] == ["Plate 1", "Plate 2"]
    out = tmp_path / "out"
    summary = run_pipeline(items, parse_config({}).run_settings("run-iiif", str(out)))
    assert summary.status == "completed" and summary.succeeded == 2
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(output_key(i.item_id) + ".jpg" for i in items)
