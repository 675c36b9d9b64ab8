"""The run report: one static HTML file an archivist can open, mail or archive.

Counts, step timings, what each stage decided, every failure with its message, and before/after
thumbnails for a sample of the restored items and for every item flagged by a warning, and
every face the faces stage changed, master beside derivative at full resolution with its identity
distance. Images are embedded (data URIs), so the file stands alone. Written atomically to
``<output>/_reports/<run_id>.html``.
"""

from __future__ import annotations

import base64
import heapq
import html
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from patina.manifests.provenance import described, report_uri, run_dataset, run_ids, scan
from patina.manifests.published import file_uri, is_public
from patina.manifests.storage import atomic_write, read_bytes
from patina.models.codecs import decode_image
from patina.models.image import transport_to_pixels

log = logging.getLogger(__name__)

THUMBNAIL_PX = 480  # each side of a before/after pair (the full files are a click away)
CATEGORICAL = {"assess": ("kind",), "enhance": ("kind", "route")}  # decisions worth counting per stage

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.pair{margin:1em 0;padding-bottom:.5em;border-bottom:1px solid #eee}.pair .sides{display:flex;gap:6px;flex-wrap:wrap}
.pair figure{margin:0}.pair img{width:min(480px,46vw);height:auto;display:block}.pair .stack{position:relative}
.pair .outline{position:absolute;left:0;top:0;display:none;pointer-events:none}
#masks:checked~.pair .outline{display:block}
.pair figcaption{font-size:.85em;color:#555}
.face{display:inline-block;margin:.5em;vertical-align:top}
.face img{max-width:45vw;margin-right:2px;image-rendering:pixelated}
.failed{color:#a00}.flag{color:#a60}.warn{background:#fff4d6;border-left:4px solid #a60;padding:.5em}
"""


def write_report(
    output_uri: str, run_id: str | None = None, storage_options: dict | None = None, sample: int = 12
) -> str:
    """Build the report of ``run_id`` (default: the latest run) and write it; returns its URI."""
    runs = run_ids(output_uri, storage_options)
    if not runs:
        raise ValueError(f"no provenance under {output_uri}")
    run_id = run_id or runs[-1]
    rows = run_dataset(output_uri, run_id, storage_options)  # one run's folder, however long the history
    if rows is None:
        raise ValueError(f"no run {run_id!r} under {output_uri}")
    uri = report_uri(output_uri, run_id)
    atomic_write(uri, render(run_id, rows, storage_options, sample).encode(), storage_options)
    return uri


EXPERIMENTAL = {
    "colorize": (
        "colorize is experimental: it keeps a print neutral where it is unsure and its colour even where the print "
        "is, but it does not yet meet its colour benchmark (benchmarks/colorize.py: colourfulness 17 on gray "
        "photographs against a target of 25). Judge every colorized print by eye."
    ),
    "faces": (
        "faces is experimental: its identity gate keeps a face unless a blend of the restored face stays the same "
        "person and is sharper, and on benchmarks/faces.py it no longer loses to leaving faces alone, but its gains "
        "are small. Compare every changed face below with its master before publishing it."
    ),
}
"""Stages whose output a reviewer must be warned about, with why (shown when the run used them)."""

BATCH_ROWS = 10_000
"""Rows turned into Python at a time: a run of 100,000 items has 300,000 or more (never all at once)."""


LISTED = 1000
"""Failures and flagged items a report lists (every one is counted; all are in the provenance)."""

CHANGED_LISTED = 24
"""Items the report shows as the run's largest changes (by the enhance stage's mean colour difference)."""


class _Seconds:
    """Count, sum and a log-spaced histogram of a step's seconds: its p95 within 1%, in fixed memory."""

    EDGES = np.geomspace(1e-6, 1e6, 2780)  # ratio 1.01 between edges

    def __init__(self) -> None:
        self.count, self.total = 0, 0.0
        self.histogram = np.zeros(len(self.EDGES) + 1, dtype=np.int64)

    def add(self, seconds: np.ndarray) -> None:
        self.count += len(seconds)
        self.total += float(seconds.sum())
        self.histogram += np.bincount(np.searchsorted(self.EDGES, seconds), minlength=len(self.histogram))

    def percentile(self, q: float) -> float:
        rank = np.searchsorted(np.cumsum(self.histogram), q / 100 * self.count)
        return float(self.EDGES[min(rank, len(self.EDGES) - 1)])


class _Tally:
    """What the report counts over a run's rows, one batch at a time; no per-item memory but the items it lists."""

    def __init__(self, sample: int) -> None:
        self.sample = sample
        self.items = self.restored = self.failed_count = self.flagged_count = 0
        self.restored_sample: list[str] = []  # the first ``sample`` restored items
        self.failed: dict[str, dict[str, Any]] = {}  # item -> its failed row (the first LISTED)
        self.flagged: list[str] = []  # items a step warned about or flagged (the first LISTED)
        self._flagged_ids: set[str] = set()  # every flagged item, counted once
        self.changed: list[tuple[float, str]] = []  # heap of the CHANGED_LISTED largest (colour change, item)
        self.rights: Counter[str] = Counter()  # rights statement ("" for none) -> items
        self.seconds: dict[tuple[int, str], _Seconds] = defaultdict(_Seconds)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.decisions: dict[str, Counter] = defaultdict(Counter)
        self.applied: set[str] = set()  # stages that changed at least one item
        self.faces: set[str] = set()  # items the faces stage looked at (an opt-in stage; each is shown)

    def add(self, batch: pa.RecordBatch) -> None:
        for (index, stage), group in _by_step(batch):
            self.seconds[(index, stage)].add(group)
        for row in batch.to_pylist():
            self._add(row)

    def _add(self, row: dict[str, Any]) -> None:
        item, stage, status = row["item_id"], row["stage"], row["status"]
        self.statuses[stage][status] += 1
        if status == "ok":
            self.applied.add(stage)
        if status == "failed":
            self.failed_count += 1  # an item fails at one step; the steps after it are skipped
            if len(self.failed) < LISTED:
                self.failed[item] = row
        if stage == "write" and status == "ok":
            self.restored += 1
            if len(self.restored_sample) < self.sample:
                self.restored_sample.append(item)
        if stage == "faces" and status in ("ok", "skipped"):
            self.faces.add(item)
        decisions = json.loads(row["decisions"] or "{}")
        if stage == "read":  # every attempt has one read row
            self.items += 1
            self.rights[described([row]).get("rights", "")] += 1
        if (decisions.get("warnings") if stage == "read" else decisions.get("flags")) and item not in self._flagged_ids:
            self._flagged_ids.add(item)
            self.flagged_count += 1
            if len(self.flagged) < LISTED:
                self.flagged.append(item)
        if stage == "enhance" and status == "ok" and decisions.get("color_change") is not None:
            entry = (float(decisions["color_change"]), item)
            if len(self.changed) < CHANGED_LISTED:
                heapq.heappush(self.changed, entry)
            elif entry > self.changed[0]:
                heapq.heapreplace(self.changed, entry)
        for key in CATEGORICAL.get(stage, ()):
            if key in decisions:
                self.decisions[f"{stage}.{key}"][str(decisions[key])] += 1
        if stage not in ("read", "write") and status == "skipped" and "reason" in decisions:
            self.decisions[f"{stage}: skipped because"][decisions["reason"]] += 1


def _by_step(batch: pa.RecordBatch) -> list[tuple[tuple[int, str], np.ndarray]]:
    """The batch's seconds per (stage index, stage)."""
    table = pa.Table.from_batches([batch]).select(["stage_index", "stage", "duration_s"])
    table = table.set_column(0, "stage_index", pc.fill_null(table["stage_index"], 0))
    table = table.set_column(2, "duration_s", pc.fill_null(table["duration_s"], 0.0))
    keys = table.group_by(["stage_index", "stage"]).aggregate([]).to_pylist()
    out = []
    for key in keys:
        mask = pc.and_(pc.equal(table["stage_index"], key["stage_index"]), pc.equal(table["stage"], key["stage"]))
        seconds = table.filter(mask)["duration_s"].to_numpy()
        out.append(((int(key["stage_index"]), key["stage"]), seconds))
    return out


Rows = pa.Table | pads.Dataset
"""A run's provenance: a table, or a dataset scanned a batch at a time (twice: the tally, then the rows shown)."""


def _batches(rows: Rows) -> Iterable[pa.RecordBatch]:
    if isinstance(rows, pa.Table):
        return rows.to_batches(max_chunksize=BATCH_ROWS)
    return scan(rows)


def _rows_of(rows: Rows, item_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The rows of ``item_ids`` only, by item, in the log's order."""
    items: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if item_ids:
        wanted = pa.array(sorted(item_ids), pa.string())
        for batch in _batches(rows):
            for row in batch.filter(pc.is_in(batch.column("item_id"), value_set=wanted)).to_pylist():
                items[row["item_id"]].append(row)
    return items


def render(run_id: str, rows: Rows, storage_options: dict | None = None, sample: int = 12) -> str:
    """The report's HTML for one run's provenance (rows with :data:`~patina.manifests.provenance.SCHEMA`)."""
    tally = _Tally(sample)
    for batch in _batches(rows):
        tally.add(batch)
    changed = [item for _, item in sorted(tally.changed, reverse=True)]
    listed = {*tally.restored_sample, *tally.flagged, *tally.faces, *changed}
    detailed = _rows_of(rows, listed)
    restored = {item for item in listed if any(r["stage"] == "write" and r["status"] == "ok" for r in detailed[item])}
    change = {item: score for score, item in tally.changed}
    flagged = sorted((item for item in tally.flagged if item in restored), key=lambda i: (-change.get(i, -1.0), i))
    shown = list(dict.fromkeys([*flagged, *(i for i in changed if i in restored), *sorted(tally.restored_sample)]))
    with_faces = sorted(tally.faces & restored)
    more_flagged = f" (the first {LISTED})" if tally.flagged_count > LISTED else ""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>patina run {e(run_id)}</title>",
        f"<style>{STYLE}</style></head><body><h1>patina run <code>{e(run_id)}</code></h1>",
        "<table><tr><th>items</th><th>restored</th><th>failed</th><th>flagged</th></tr>",
        f"<tr><td>{tally.items}</td><td>{tally.restored}</td><td>{tally.failed_count}</td>"
        f"<td>{tally.flagged_count}</td></tr></table>",
        *(f"<p class='warn'>{e(text)}</p>" for stage, text in EXPERIMENTAL.items() if stage in tally.applied),
        "<h2>Rights</h2>",
        _rights(tally.rights),
        "<h2>Steps</h2>",
        _timings(tally.seconds, tally.statuses),
        "<h2>Decisions</h2>",
        _decisions(tally.decisions),
        f"<h2>Failures ({tally.failed_count}{f', the first {LISTED} listed' if tally.failed_count > LISTED else ''})"
        "</h2>",
        _failures(tally.failed),
        _changes({item: detailed[item] for item in changed}, set(flagged)),
        _faces({item: detailed[item] for item in with_faces}, storage_options),
        f"<h2>Before and after ({len(shown)} of {tally.restored}: every flagged item{more_flagged} and the largest "
        "changes first, then a sample)</h2>",
        _mask_toggle(detailed, shown),
        *(_pair(item_id, detailed[item_id], item_id in tally.flagged, storage_options) for item_id in shown),
        "</body></html>",
    ]
    return "".join(parts)


def _mask_toggle(detailed: dict[str, list[dict[str, Any]]], shown: list[str]) -> str:
    """The checkbox that outlines the damage masks over the befores, where the run kept masks."""
    kept = sum(bool(_decisions_of(detailed[item], "write").get("mask")) for item in shown)
    if not kept:
        return ""
    return (
        "<input type='checkbox' id='masks'><label for='masks'> outline the damage masks in magenta "
        f"({kept} of the items below have one)</label>"
    )


def _warnings(rows: list[dict[str, Any]]) -> list[str]:
    """The read step's warnings and every later step's flags, each flag named by its stage."""
    out = []
    for row in rows:
        decisions = json.loads(row["decisions"] or "{}")
        if row["stage"] == "read":
            out.extend(decisions.get("warnings", []))
        else:
            out.extend(f"{row['stage']}: {flag}" for flag in decisions.get("flags") or [])
    return out


def _decisions_of(rows: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    row = next((r for r in rows if r["stage"] == stage), None)
    return json.loads(row["decisions"] or "{}") if row else {}


def _changes(items: dict[str, list[dict[str, Any]]], flagged: set[str]) -> str:
    """The items the enhance stage changed most: what assess judged, the tone and colour change, clipping."""
    if not items:
        return ""
    out = [
        f"<h2>Largest changes (the {len(items)} items enhance changed most)</h2>",
        "<p>Mean |ΔL*| and ΔE*ab between the stage's input and output; clipped: pixels whose darkest channel is "
        "at most 5/255 (shadows) or brightest at least 250/255 (highlights), before → after.</p>",
        "<table><tr><th>item</th><th>assessed</th><th>route</th><th>strength</th><th>ΔL*</th><th>ΔE</th>"
        "<th>shadows clipped</th><th>highlights clipped</th><th>flags</th></tr>",
    ]
    e = html.escape
    for item_id, rows in sorted(items.items(), key=lambda kv: -_decisions_of(kv[1], "enhance")["color_change"]):
        assess, enhance = _decisions_of(rows, "assess"), _decisions_of(rows, "enhance")
        before, after = enhance.get("clipped_before") or [0, 0], enhance.get("clipped_after") or [0, 0]
        kind = e(str(assess.get("kind", "not assessed")))
        reason = f" <small>({e(assess['reason'])})</small>" if assess.get("reason") else ""
        out.append(
            f"<tr{' class=flag' if item_id in flagged else ''}><td>{e(item_id)}</td><td>{kind}{reason}</td>"
            f"<td>{e(str(enhance.get('route')))}</td><td>{enhance.get('strength', 1.0):.2f}</td>"
            f"<td>{enhance.get('tone_change', 0):.1f}</td><td>{enhance.get('color_change', 0):.1f}</td>"
            f"<td>{before[0]:.2%} → {after[0]:.2%}</td><td>{before[1]:.2%} → {after[1]:.2%}</td>"
            f"<td>{e('; '.join(enhance.get('flags') or []))}</td></tr>"
        )
    return "".join([*out, "</table>"])


def _timings(by_stage: dict[tuple[int, str], _Seconds], statuses: dict[str, Counter]) -> str:
    out = [
        "<table><tr><th>step</th><th>ok</th><th>skipped</th><th>failed</th><th>total s</th><th>mean s</th>"
        "<th>p95 s</th></tr>"
    ]
    for (_, stage), seconds in sorted(by_stage.items()):
        s = statuses[stage]
        mean = seconds.total / seconds.count if seconds.count else 0.0
        out.append(
            f"<tr><td>{html.escape(stage)}</td><td>{s['ok']}</td><td>{s['skipped']}</td><td>{s['failed']}</td>"
            f"<td>{seconds.total:.2f}</td><td>{mean:.3f}</td><td>{seconds.percentile(95):.3f}</td></tr>"
        )
    return "".join([*out, "</table>"])


def _decisions(counts: dict[str, Counter]) -> str:
    out = ["<table><tr><th>decision</th><th>value</th><th>items</th></tr>"]
    for name, values in sorted(counts.items()):
        for value, count in values.most_common():
            out.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}</td><td>{count}</td></tr>")
    return "".join([*out, "</table>"])


def _link_or_text(value: str) -> str:
    e = html.escape
    return f"<a href='{e(value)}'>{e(value)}</a>" if value.startswith(("http://", "https://")) else e(value)


def _caption(fields: dict[str, str]) -> str:
    """``title — creator, date · collection · rights`` for a person to recognise the item."""
    who = ", ".join(fields[k] for k in ("creator", "date") if fields.get(k))
    head = " — ".join(x for x in (fields.get("title", ""), who) if x)
    parts = [html.escape(x) for x in (head, fields.get("collection", "")) if x]
    if fields.get("rights"):
        parts.append("rights: " + _link_or_text(fields["rights"]))
    return f"<p class='meta'>{' · '.join(parts)}</p>" if parts else ""


def _rights(counts: Counter) -> str:
    """How many items of the run carry each rights statement (and how many none)."""
    out = ["<table><tr><th>rights statement</th><th>items</th></tr>"]
    for statement, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        text = _link_or_text(statement) if statement else "<i>none in the manifest</i>"
        out.append(f"<tr><td>{text}</td><td>{count}</td></tr>")
    return "".join([*out, "</table>"])


def _failures(failed: dict[str, dict[str, Any]]) -> str:
    out = ["<table><tr><th>item</th><th>step</th><th>error</th></tr>"]
    for item_id, row in sorted(failed.items()):
        message = f"{row['error_type']}: {row['error_message']}"
        out.append(
            f"<tr class='failed'><td>{html.escape(item_id)}</td><td>{html.escape(row['stage'])}</td>"
            f"<td>{html.escape(message)}</td></tr>"
        )
    return "".join([*out, "</table>"])


def _pair(item_id: str, rows: list[dict[str, Any]], flagged: bool, storage_options: dict | None) -> str:
    """Before and after side by side, labelled, each linking to its full-resolution file; over the before, the
    outline of the damage mask (``output.masks``), shown by the page's checkbox."""
    write = next(r for r in rows if r["stage"] == "write")
    mask = _decisions_of(rows, "write").get("mask")
    sides = []
    for label, uri in (("before: the master", write["source_uri"]), ("after: the derivative", write["output_uri"])):
        pixels = _thumbnail(uri, storage_options)
        link = html.escape(uri if is_public(uri) else file_uri(uri), quote=True)
        if pixels is None:
            sides.append(f"<figure><p>{label}: unreadable</p></figure>")
            continue
        picture = f"<a href='{link}'><img alt='{label}' src='{_data_uri(pixels, '.jpg')}'></a>"
        if mask and uri == write["source_uri"]:
            outline = _outline(mask, pixels.shape[:2], storage_options)
            alt = f"damage mask of {html.escape(item_id)}"
            picture += f"<img class='outline' alt='{alt}' src='{outline}'>" if outline else ""
        sides.append(
            f"<figure><div class='stack'>{picture}</div><figcaption>{label} (click for full resolution)</figcaption>"
            "</figure>"
        )
    note = "".join(f"<p class='flag'>{html.escape(w)}</p>" for w in _warnings(rows)) if flagged else ""
    caption = _caption(described(rows))
    return (
        f"<div class='pair'><p><b>{html.escape(item_id)}</b></p>{caption}"
        f"<div class='sides'>{''.join(sides)}</div>{note}</div>"
    )


def _faces(items: dict[str, list[dict[str, Any]]], storage_options: dict | None) -> str:
    """Every face the faces stage changed: the master's and the derivative's pixels side by side."""
    changed, kept = [], 0
    for item_id, rows in sorted(items.items()):
        stage = next((r for r in rows if r["stage"] == "faces" and r["status"] in ("ok", "skipped")), None)
        write = next((r for r in rows if r["stage"] == "write" and r["status"] == "ok"), None)
        if stage is None or write is None:
            continue
        decisions = json.loads(stage["decisions"] or "{}")
        faces = decisions.get("faces", [])
        kept += sum(f["strength"] == 0 for f in faces)
        if any(f["strength"] > 0 for f in faces):
            changed.append((item_id, write, decisions["image_size"], [f for f in faces if f["strength"] > 0]))
    if not changed and not kept:
        return ""
    count = sum(len(faces) for *_, faces in changed)
    parts = [
        f"<h2>Faces ({count} changed, {kept} kept as they were)</h2>",
        "<p>Each changed face: master | derivative, at full resolution; identity = distance of a face-recognition "
        "embedding between the face before and after the stage (0.6: another person).</p>",
    ]
    for item_id, write, (width, height), faces in changed:
        images = [_pixels(uri, storage_options) for uri in (write["source_uri"], write["output_uri"])]
        for face in faces:
            crops = [_face_crop(im, face["box"], width, height) if im is not None else None for im in images]
            cells = "".join(
                f"<img alt='{label}' src='{_data_uri(crop, '.png')}'>" if crop is not None else f"{label}: unreadable"
                for label, crop in zip(("master", "derivative"), crops, strict=True)
            )
            parts.append(
                f"<div class='face'>{cells}<p><b>{html.escape(item_id)}</b> · identity {face['identity_shift']:.2f}"
                f" · blend {face['strength']:.2f}"
                f" · sharpness {face['sharpness_in']:.3f} → {face['sharpness_out']:.3f}</p></div>"
            )
    return "".join(parts)


def _face_crop(pixels: np.ndarray, box: list[int], width: int, height: int, margin: float = 0.3) -> np.ndarray:
    """The face ``box`` (in the faces stage's ``width`` x ``height`` image) with a margin, from ``pixels``."""
    fx, fy = pixels.shape[1] / width, pixels.shape[0] / height
    x, y, w, h = box
    x0, y0 = max(0, round((x - margin * w) * fx)), max(0, round((y - margin * h) * fy))
    x1, y1 = round((x + (1 + margin) * w) * fx), round((y + (1 + margin) * h) * fy)
    return pixels[y0:y1, x0:x1]


def _pixels(uri: str, storage_options: dict | None) -> np.ndarray | None:
    """The 8-bit RGB pixels of the image at ``uri``, or None (logged) when it cannot be read."""
    try:
        pixels = decode_image(read_bytes(uri, storage_options), max_pixels=10**9).pixels
    except (OSError, ValueError) as exc:
        log.warning("report: cannot show %s: %s", uri, exc)
        return None
    return transport_to_pixels(pixels, 8) if pixels.dtype == np.uint16 else pixels


def _data_uri(pixels: np.ndarray, extension: str) -> str | None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if extension == ".jpg" else []
    swapped = pixels[..., [2, 1, 0, 3][: pixels.shape[-1]]]  # RGB(A) -> OpenCV's BGR(A)
    ok, buffer = cv2.imencode(extension, np.ascontiguousarray(swapped), params)
    kind = "jpeg" if extension == ".jpg" else extension.lstrip(".")
    return f"data:image/{kind};base64,{base64.b64encode(buffer.tobytes()).decode()}" if ok else None


def _thumbnail(uri: str, storage_options: dict | None) -> np.ndarray | None:
    """The image at ``uri``, at most THUMBNAIL_PX on its long side (None: unreadable)."""
    pixels = _pixels(uri, storage_options)
    if pixels is None:
        return None
    scale = THUMBNAIL_PX / max(pixels.shape[:2])
    if scale < 1:
        size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return pixels


def _outline(uri: str, shape: tuple[int, int], storage_options: dict | None) -> str | None:
    """A transparent PNG data URI of ``shape`` with the boundary of the mask at ``uri`` drawn in magenta: a
    region shrunk below a pixel stays visible (any coverage counts)."""
    try:
        mask = cv2.imdecode(np.frombuffer(read_bytes(uri, storage_options), np.uint8), cv2.IMREAD_GRAYSCALE)
    except OSError as exc:
        log.warning("report: cannot outline %s: %s", uri, exc)
        return None
    if mask is None:
        log.warning("report: %s is not a mask image", uri)
        return None
    covered = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA) > 0
    contours, _ = cv2.findContours(covered.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    rgba = np.zeros((*shape, 4), np.uint8)
    cv2.drawContours(rgba, contours, -1, (255, 0, 200, 255), 1)
    return _data_uri(rgba, ".png")
