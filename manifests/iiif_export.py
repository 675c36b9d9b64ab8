"""A IIIF Presentation 3 manifest of the restored derivatives (pure: provenance rows in, JSON out).

One canvas per restored item, in item id order: its label is the manifest's title (else the
item id), its ``metadata`` the descriptive fields, the master and the steps that made the
derivative; ``rights`` the item's rights statement when it is a URI (anything else becomes a
``requiredStatement``); ``seeAlso`` the master and the run's report; ``partOf`` the source IIIF
manifest when the item came from one. The painting image is the derivative itself under
``base_url`` (a level-0 static image), or, with ``image_service``, a IIIF Image API 3 service
serving the derivatives under their output keys.

Spec: https://iiif.io/api/presentation/3.0/
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from patina.manifests.provenance import REPORTS_DIR, described
from patina.manifests.published import file_uri, is_public

CONTEXT = "http://iiif.io/api/presentation/3/context.json"
MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff", ".webp": "image/webp"}
LABELS = {"title": "Title", "date": "Date", "creator": "Creator", "collection": "Collection"}
IIIF_DIR = "_iiif"

Size = Callable[[str], tuple[int, int]]  # derivative URI -> (width, height)


def _text(value: str, language: str = "none") -> dict[str, list[str]]:
    return {language: [value]}


def _pair(label: str, value: str) -> dict[str, Any]:
    return {"label": _text(label, "en"), "value": _text(value)}


def is_uri(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def latest_derivatives(rows: Iterable[dict[str, Any]], run_id: str | None = None) -> list[dict[str, Any]]:
    """Each item's latest written derivative (only ``run_id``'s with a run), with its read row's fields.

    Returns one dict per item, sorted by item id: ``item_id``, ``output_uri``, ``source_uri``,
    ``run_id``, ``steps`` (the restoration steps that applied, in order), ``descriptive``.
    """
    by_run_item: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if run_id is None or row["run_id"] == run_id:
            by_run_item.setdefault((row["run_id"], row["item_id"]), []).append(row)
    latest: dict[str, dict[str, Any]] = {}
    for (run, item_id), item_rows in sorted(by_run_item.items()):
        write = next((r for r in item_rows if r["stage"] == "write" and r["status"] == "ok"), None)
        if write is None:
            continue
        steps = sorted((r for r in item_rows if r["stage"] not in ("read", "write")), key=lambda r: r["stage_index"])
        latest[item_id] = {
            "item_id": item_id,
            "output_uri": write["output_uri"],
            "source_uri": write["source_uri"],
            "run_id": run,
            "steps": [f"{r['stage']}: {r['model_id']}" for r in steps if r["status"] == "ok"],
            "descriptive": described(item_rows),
        }
    return [latest[k] for k in sorted(latest)]


def manifest(
    derivatives: list[dict[str, Any]],
    output_uri: str,
    base_url: str,
    size: Size,
    image_service: str | None = None,
    label: str | None = None,
    include_master_paths: bool = False,
) -> dict[str, Any]:
    """The IIIF Presentation 3 manifest (a JSON-able dict) of ``derivatives`` (see :func:`latest_derivatives`).

    ``base_url`` is where ``output_uri`` is published: a derivative at ``OUT/key.png`` is
    ``BASE/key.png``, the manifest ``BASE/_iiif/manifest.json``. A master on the web or in object
    storage is named and linked by its URI; a local one by its item id only, unless
    ``include_master_paths`` (then its ``file://`` URI): a published manifest names no local path.
    """
    if not derivatives:
        raise ValueError(f"no restored derivatives under {output_uri}")
    base, out = base_url.rstrip("/"), output_uri.rstrip("/")

    def published(uri: str) -> str:
        """Where a derivative is on the web: its key percent-encoded again, so that a server decoding
        the URL finds the file whose name holds the key's own escapes (``item%2F0.png``)."""
        if not uri.startswith(out + "/"):
            raise ValueError(f"{uri} is not under the output {output_uri}")
        relative = uri[len(out) + 1 :]
        return f"{base}/{quote(relative, safe='/') if is_uri(base) else relative}"

    collections = sorted({d["descriptive"]["collection"] for d in derivatives if d["descriptive"].get("collection")})
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "id": f"{base}/{IIIF_DIR}/manifest.json",
        "type": "Manifest",
        "label": _text(label or (", ".join(collections) if collections else f"Restored derivatives of {base}"), "en"),
        "summary": _text("Derivatives restored by patina; the masters are unchanged (linked from each canvas).", "en"),
        "items": [_canvas(d, base, published, size, image_service, include_master_paths) for d in derivatives],
    }
    statements = {d["descriptive"].get("rights") for d in derivatives}
    if len(statements) == 1 and (shared := statements.pop()) and is_uri(shared):
        document["rights"] = shared  # one statement for all: also on the manifest
    return document


def _canvas(
    derivative: dict[str, Any], base: str, published: Callable[[str], str], size: Size, image_service: str | None,
    include_master_paths: bool,
) -> dict[str, Any]:  # fmt: skip
    fields = derivative["descriptive"]
    uri = derivative["output_uri"]
    key = uri.rsplit("/", 1)[-1]
    width, height = size(uri)
    canvas_id = f"{base}/{IIIF_DIR}/canvas/{quote(key, safe='')}"
    image = published(uri)
    body: dict[str, Any] = {
        "id": image,
        "type": "Image",
        "format": MEDIA_TYPES.get(key[key.rfind(".") :], "image/jpeg"),
        "width": width,
        "height": height,
    }
    if image_service:
        service = f"{image_service.rstrip('/')}/{quote(key, safe='')}"
        body["id"] = f"{service}/full/max/0/default.jpg"
        body["format"] = "image/jpeg"
        body["service"] = [{"id": service, "type": "ImageService3", "profile": "level1"}]
    metadata = [_pair(LABELS[name], fields[name]) for name in LABELS if fields.get(name)]
    master = derivative["source_uri"]
    master_link = master if is_public(master) else file_uri(master) if include_master_paths else None
    metadata += [
        _pair("Master", master_link or f"{derivative['item_id']} (held by the archive; not published)"),
        _pair("Restoration", "; ".join(derivative["steps"]) or "no step changed the pixels"),
        _pair("patina run", derivative["run_id"]),
    ]
    canvas: dict[str, Any] = {
        "id": canvas_id,
        "type": "Canvas",
        "label": _text(fields.get("title") or derivative["item_id"]),
        "height": height,
        "width": width,
        "metadata": metadata,
        "seeAlso": [
            *([{"id": master_link, "type": "Image", "label": _text("master (unchanged)", "en")}] * bool(master_link)),
            {
                "id": f"{base}/{REPORTS_DIR}/{derivative['run_id']}.html",
                "type": "Text",
                "format": "text/html",
                "label": _text("processing report of the run", "en"),
            },
        ],
        "items": [
            {
                "id": f"{canvas_id}/page",
                "type": "AnnotationPage",
                "items": [
                    {
                        "id": f"{canvas_id}/page/image",
                        "type": "Annotation",
                        "motivation": "painting",
                        "body": body,
                        "target": canvas_id,
                    }
                ],
            }
        ],
    }
    if fields.get("date") and _is_date(fields["date"]):
        canvas["navDate"] = _nav_date(fields["date"])
    if rights := fields.get("rights"):
        if is_uri(rights):
            canvas["rights"] = rights
        else:
            canvas["requiredStatement"] = _pair("Rights", rights)
    if fields.get("iiif_manifest"):
        canvas["partOf"] = [{"id": fields["iiif_manifest"], "type": "Manifest"}]
    if fields.get("iiif_canvas"):
        canvas["seeAlso"].insert(
            0, {"id": fields["iiif_canvas"], "type": "Canvas", "label": _text("source canvas", "en")}
        )
    return canvas


ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def _is_date(text: str) -> bool:
    return ISO_DATE.match(text) is not None


def _nav_date(text: str) -> str:
    """An ISO date (``1927``, ``1927-06``, ``1927-06-18`` or a full timestamp) as IIIF's navDate (xsd:dateTime, UTC)."""
    if "T" in text:
        return text if text.endswith("Z") or "+" in text[10:] else text + "Z"
    parts = [*text.split("-"), "01", "01"][:3]
    return f"{parts[0]}-{parts[1]:0>2}-{parts[2]:0>2}T00:00:00Z"
