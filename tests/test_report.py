"""The static HTML run report: content from a real run, and its rendering in headless Chromium."""

from __future__ import annotations

import base64
import csv
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

from patina.actors.pipeline import run_pipeline
from patina.flows.config import parse_config
from patina.flows.report import report_uri, write_report
from patina.manifests.readers import read_manifest
from tests.helpers import DEFAULT_STEPS


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "a":
            self.links.append(dict(attrs).get("href", ""))
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def reported(ray_local, tmp_path_factory):
    """A run over good, bad, multi-frame and oddly named items, and its report."""
    from tests.conftest import make_collection

    root = tmp_path_factory.mktemp("report")
    manifest = make_collection(root / "c", count=3)
    frames = [Image.fromarray(np.full((20, 30, 3), v, np.uint8)) for v in (40, 200)]
    frames[0].save(root / "c" / "anim.gif", save_all=True, append_images=frames[1:])
    with open(manifest, "a", newline="") as handle:
        csv.writer(handle).writerow(["<b>odd</b> & id", "anim.gif", ""])
    out = root / "out"
    run_pipeline(read_manifest(str(manifest)), parse_config({}).run_settings("run-r", str(out)))
    return out, write_report(str(out))


def test_report_has_counts_timings_failures_and_thumbnails(reported):
    out, uri = reported
    assert uri == report_uri(str(out), "run-r") and Path(uri).exists()
    page = _Collect()
    page.feed(Path(uri).read_text())
    text = " ".join(page.text)
    assert "patina run run-r" in text
    for needed in ("missing", "SourceUnavailable", "ChecksumMismatch: sha256 mismatch", "DecodeError"):
        assert needed in text
    for step in DEFAULT_STEPS:
        assert step in text
    assert "assess.kind" in text and "enhance.route" in text
    assert "<b>odd</b> & id" in text and page.scripts == 0  # ids are escaped, never markup
    assert "frames (animated)" in text  # the flagged item is shown with its warning
    thumbnails = [img for img in page.images if img["src"].startswith("data:image/jpeg;base64,")]
    assert len(thumbnails) == 2 * 4  # before and after for the three restored scans and the flagged GIF
    assert [img["alt"] for img in thumbnails[:2]] == ["before: the master", "after: the derivative"]
    assert "before: the master (click for full resolution)" in text
    links = [href for href in page.links if href.startswith("file:///")]
    assert len(links) == 8 and all(Path(unquote(urlparse(href).path)).exists() for href in links)


def test_cli_report_for_an_unknown_run_is_a_clear_error(reported, tmp_path):
    import sys

    out, _ = reported
    done = subprocess.run(
        [sys.executable, "-m", "patina.flows.cli", "report", str(out), "--run", "nope"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "no run 'nope'" in done.stderr


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt install chromium)"
)
def test_report_renders_in_headless_chromium(reported, tmp_path):
    _, uri = reported
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2000"]
    done = subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", f"file://{uri}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10  # a page with text and pictures, not a blank one
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", f"file://{uri}"], capture_output=True, text=True, timeout=120
    )
    assert "patina run" in dom.stdout and dom.stdout.count("<img") == 8
    # side by side as a reviewer sees them: the pair's two pictures on one row, the after right of the before
    script = tmp_path / "layout.html"
    script.write_text(
        Path(uri)
        .read_text()
        .replace(
            "</body>",
            "<script>const f=document.querySelector('.pair .sides').querySelectorAll('img');"
            "const a=f[0].getBoundingClientRect(),b=f[1].getBoundingClientRect();"
            "document.title=[Math.round(a.top),Math.round(b.top),Math.round(a.right),Math.round(b.left),"
            "Math.round(a.width)].join(',');</script></body>",
        )
    )
    laid = subprocess.run(
        ["chromium", *flags, "--dump-dom", f"file://{script}"], capture_output=True, text=True, timeout=120
    )
    top_a, top_b, right_a, left_b, width = map(int, laid.stdout.split("<title>")[1].split("</title>")[0].split(","))
    assert top_a == top_b and left_b > right_a and width > 256, laid.stdout[:300]


def test_report_warns_that_colorize_is_experimental_only_when_it_ran(reported):
    import pyarrow as pa

    from patina.flows.report import render
    from patina.manifests.provenance import SCHEMA, read_provenance

    out, _ = reported
    table = read_provenance(str(out))
    assert "colorize is experimental" not in render("run-r", table)
    rows = table.to_pylist()
    enhance = next(r for r in rows if r["stage"] == "enhance" and r["status"] == "ok")
    colorized = [*rows, {**enhance, "stage": "colorize", "stage_index": enhance["stage_index"] + 1}]
    assert "colorize is experimental" in render("run-r", pa.Table.from_pylist(colorized, schema=SCHEMA))


def test_everything_a_run_writes_is_readable_as_the_umask_says(reported):
    import os
    import stat

    out, _ = reported
    written = [p for p in Path(out).rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in written) and any(p.suffix == ".html" for p in written)
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask  # the run's Ray workers and driver share the test process's umask
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in written}
    assert all(mode == expected for mode in modes.values()), (oct(expected), modes)
    assert os.access(written[0], os.R_OK)


def test_a_report_counts_every_row_but_lists_a_bounded_number(monkeypatch):
    import numpy as np
    import pyarrow as pa

    from patina.flows import report
    from patina.manifests.provenance import SCHEMA

    monkeypatch.setattr(report, "LISTED", 10)
    rows = []
    for n in range(40):
        common = {"run_id": "r", "item_id": f"i{n:02d}", "stage_index": 0, "duration_s": 0.001 * (n + 1)}
        rows.append({**common, "stage": "read", "status": "ok", "decisions": "{}"})
        failure = {"error_type": "DecodeError", "error_message": f"broken {n}"}
        rows.append({**common, "stage": "assess", "stage_index": 1, "status": "failed", **failure})
    page = report.render("r", pa.Table.from_pylist(rows, schema=SCHEMA))
    assert "<td>40</td><td>0</td><td>40</td><td>0</td>" in page  # items, restored, failed, flagged: all counted
    assert "Failures (40, the first 10 listed)" in page and page.count("class='failed'") == 10

    seconds = report._Seconds()
    durations = np.random.default_rng(0).lognormal(-3, 1, 100_000)
    for chunk in np.array_split(durations, 7):
        seconds.add(chunk)
    assert seconds.count == 100_000 and abs(seconds.total - durations.sum()) < 1e-6 * durations.sum()
    assert abs(seconds.percentile(95) / np.percentile(durations, 95) - 1) < 0.011  # within the bins' 1%


def test_report_lists_the_largest_changes_first_with_what_assess_judged_and_flags(reported):
    """Per item: the assess decision, mean tone and colour change, clipping before and after, flags; items
    with large changes and flagged items come first among the before/after pairs."""
    import json
    from html import escape

    import pyarrow as pa

    from patina.flows.report import render
    from patina.manifests.provenance import SCHEMA, read_provenance

    out, _ = reported
    rows = read_provenance(str(out)).to_pylist()
    enhanced = [r for r in rows if r["stage"] == "enhance" and r["status"] == "ok"]
    assert len(enhanced) >= 2
    assert all({"tone_change", "clipped_before", "clipped_after", "flags"} <= json.loads(r["decisions"]).keys()
               for r in enhanced)  # fmt: skip
    big = enhanced[-1]
    decisions = {**json.loads(big["decisions"]), "tone_change": 31.5, "color_change": 40.25,
                 "flags": ["tone changed by mean dL* 31.5 (bound 8.0)"]}  # fmt: skip
    rows = [{**r, "decisions": json.dumps(decisions)} if r is big else r for r in rows]
    page = render("run-r", pa.Table.from_pylist(rows, schema=SCHEMA))
    section = page[page.index("Largest changes") : page.index("Before and after")]
    first_row = section.split("<tr")[2]  # after the header row
    assert escape(big["item_id"]) in first_row and "<td>31.5</td><td>40.2</td>" in first_row
    assessed = json.loads(
        next(r for r in rows if r["item_id"] == big["item_id"] and r["stage"] == "assess")["decisions"]
    )
    assert f"{assessed['kind']} <small>({escape(assessed['reason'])})</small>" in first_row
    pairs = page[page.index("Before and after") :]
    assert pairs.index(escape(big["item_id"])) < min(
        pairs.index(escape(r["item_id"])) for r in enhanced if r is not big
    )
    assert "enhance: tone changed by mean dL* 31.5" in pairs
    warned = {
        r["item_id"]
        for r in rows
        if json.loads(r["decisions"] or "{}").get("warnings" if r["stage"] == "read" else "flags")
    }
    assert big["item_id"] in warned
    flagged_rows = [row for row in section.split("<tr")[2:] if row.startswith(" class=flag>")]
    assert len(flagged_rows) == len(warned & {r["item_id"] for r in enhanced})  # exactly the flagged items


@pytest.fixture(scope="module")
def masked(ray_local, tmp_path_factory):
    """A run with ``output.masks`` over one scan with a bright scratch across it, and its report."""
    from patina.models import synthetic as syn
    from patina.models.image import to_uint8
    from tests.helpers import scene

    root = tmp_path_factory.mktemp("masked")
    image = syn.scratches(scene(96, 128, seed=3), 3, np.random.default_rng(3)).image
    (root / "c").mkdir()
    Image.fromarray(to_uint8(image)).save(root / "c" / "scan.png")
    (root / "c" / "manifest.csv").write_text("item_id,source_uri\nscratched/1,scan.png\n")
    out = root / "out"
    settings = parse_config({"output": {"masks": True}}).run_settings("run-m", str(out))
    run_pipeline(read_manifest(str(root / "c" / "manifest.csv")), settings)
    return out, write_report(str(out))


def test_kept_masks_are_written_beside_the_derivatives_and_outlined_on_demand(masked):
    import json

    from patina.actors.io_tasks import mask_uri
    from patina.manifests.provenance import read_provenance

    out, uri = masked
    write = next(r for r in read_provenance(str(out)).to_pylist() if r["stage"] == "write")
    decisions = json.loads(write["decisions"])
    assert decisions["mask"] == mask_uri(str(out), "scratched/1") == str(out / "_masks" / "scratched%2F1.png")
    mask = np.asarray(Image.open(decisions["mask"]))
    assert mask.shape == (96, 128) and decisions["mask_pixels"] == np.count_nonzero(mask) > 0
    assert json.loads(write["params"])["masks"] is True  # keeping masks is part of the write step
    page = _Collect()
    page.feed(Path(uri).read_text())
    outline = [img for img in page.images if img.get("class") == "outline"]
    assert len(outline) == 1 and outline[0]["src"].startswith("data:image/png;base64,")
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(outline[0]["src"][22:]))))
    assert drawn.shape[2] == 4 and (drawn[..., 3] > 0).any() and (drawn[..., 3] == 0).mean() > 0.5  # lines only
    assert "outline the damage masks" in " ".join(page.text)


def test_a_run_without_output_masks_writes_none(reported):
    out, uri = reported
    assert not (Path(out) / "_masks").exists() and "id='masks'" not in Path(uri).read_text()


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt install chromium)"
)
def test_mask_outline_lies_over_the_before_only_when_asked(masked, tmp_path):
    _, uri = masked
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2000"]
    probe = (
        "<script>const o=document.querySelector('.outline'),b=document.querySelector('.pair img');"
        "const hidden=getComputedStyle(o).display;document.getElementById('masks').click();"
        "const r=o.getBoundingClientRect(),s=b.getBoundingClientRect();"
        "document.title=[hidden,getComputedStyle(o).display,...[r.left-s.left,r.top-s.top,r.width-s.width,"
        "r.height-s.height].map(Math.round)].join(',');</script></body>"
    )
    script = tmp_path / "probe.html"
    script.write_text(Path(uri).read_text().replace("</body>", probe))
    laid = subprocess.run(
        ["chromium", *flags, "--dump-dom", f"file://{script}"], capture_output=True, text=True, timeout=120
    )
    title = laid.stdout.split("<title>")[1].split("</title>")[0]
    assert title == "none,block,0,0,0,0", laid.stdout[:300]  # hidden until asked, then exactly over the before
