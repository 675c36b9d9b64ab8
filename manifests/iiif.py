"""IIIF Presentation API v2 and v3 manifests -> item records (pure; JSON in, records out).

One record per painting image of each canvas: ``item_id`` is the canvas id (``#2``, ``#3``
for further images on the same canvas), ``source_uri`` the full-size image, requested
through its IIIF Image API service when there is one (``full/max`` for Image API 3,
``full/full`` for 2, the best lossless format the service lists, else JPEG), otherwise the
image resource's own URL. Labels, ``navDate``, rights and ``metadata`` pairs are kept.

Specs: https://iiif.io/api/presentation/2.1/ , https://iiif.io/api/presentation/3.0/ ,
https://iiif.io/api/image/3.0/#4-image-requests
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patina.manifests.items import ManifestError

PRESENTATION_2 = "iiif.io/api/presentation/2"
PRESENTATION_3 = "iiif.io/api/presentation/3"
LANGUAGE_PREFERENCE = ("en", "none")
PREFERRED_FORMATS = ("tif", "png")  # lossless formats a service may offer, best first


def records(document: Any, manifest_uri: str) -> list[tuple[str, dict[str, Any]]]:
    """Item records of a IIIF manifest document (parsed JSON)."""
    if not isinstance(document, dict):
        raise ManifestError(f"{manifest_uri}: a IIIF manifest is a JSON object, got {type(document).__name__}")
    contexts = document.get("@context")
    contexts = " ".join(c for c in (contexts if isinstance(contexts, list) else [contexts]) if isinstance(c, str))
    kind = document.get("type") or document.get("@type")
    if kind in ("Collection", "sc:Collection"):
        raise ManifestError(f"{manifest_uri}: a IIIF Collection, not a Manifest; give one of its manifests")
    if PRESENTATION_3 in contexts:
        return _Reader(manifest_uri, 3).manifest(document)
    if PRESENTATION_2 in contexts:
        return _Reader(manifest_uri, 2).manifest(document)
    raise ManifestError(f"{manifest_uri}: not a IIIF Presentation v2 or v3 manifest (@context is {contexts!r})")


class _Reader:
    def __init__(self, manifest_uri: str, version: int) -> None:
        self.uri = manifest_uri
        self.version = version

    def _id(self, node: Mapping[str, Any]) -> str | None:
        value = node.get("id") if self.version == 3 else node.get("@id")
        return value or node.get("@id") or node.get("id")

    def manifest(self, document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        common = {
            "collection": label_text(document.get("label")),
            "date": document.get("navDate"),
            "rights": self._rights(document),
            "iiif_manifest": self._id(document),
            **metadata_pairs(document.get("metadata"), f"{self.uri} metadata"),
        }
        out = []
        for number, canvas in enumerate(self._canvases(document), start=1):
            where = f"{self.uri} canvas {number}"
            if not isinstance(canvas, dict):
                raise ManifestError(f"{where}: a canvas must be a JSON object")
            canvas_id = self._id(canvas)
            if not canvas_id:
                raise ManifestError(f"{where}: canvas has no id")
            where = f"{where} ({canvas_id})"
            images = self._painting_images(canvas, where)
            if not images:
                raise ManifestError(f"{where}: canvas has no painting image")
            own = metadata_pairs(canvas.get("metadata"), f"{where} metadata")
            date = canvas.get("navDate") or _dated(own) or common["date"] or _dated(common)
            fields = {**common, **own, "title": label_text(canvas.get("label")), "iiif_canvas": canvas_id, "date": date}
            for k, image in enumerate(images, start=1):
                item_id = canvas_id if k == 1 else f"{canvas_id}#{k}"
                out.append((where, {**fields, "item_id": item_id, "source_uri": self._image_uri(image, where)}))
        if not out:
            raise ManifestError(f"{self.uri}: the IIIF manifest has no canvases")
        return out

    def _canvases(self, document: dict[str, Any]) -> list[Any]:
        if self.version == 3:
            return _list(document.get("items"), f"{self.uri}: items")
        sequences = _list(document.get("sequences"), f"{self.uri}: sequences")
        if not sequences:
            raise ManifestError(f"{self.uri}: IIIF v2 manifest has no sequences")
        first = sequences[0]
        if not isinstance(first, dict):
            raise ManifestError(f"{self.uri}: sequences[0] must be a JSON object")
        return _list(first.get("canvases"), f"{self.uri}: sequences[0].canvases")

    def _painting_images(self, canvas: dict[str, Any], where: str) -> list[dict[str, Any]]:
        if self.version == 2:
            annotations = _list(canvas.get("images"), f"{where}: images")
            found = [
                a.get("resource")
                for a in annotations
                if isinstance(a, dict) and a.get("motivation", "sc:painting") == "sc:painting"
            ]
        else:
            found = []
            for page in _list(canvas.get("items"), f"{where}: items"):
                for annotation in _list(page.get("items") if isinstance(page, dict) else None, f"{where}: page items"):
                    if isinstance(annotation, dict) and annotation.get("motivation") == "painting":
                        found.append(annotation.get("body"))
        images = []
        for body in found:
            if isinstance(body, dict) and body.get("type") == "Choice":  # v3 alternatives: the first is the default
                body = (_list(body.get("items"), f"{where}: choice items") or [None])[0]
            elif isinstance(body, dict) and body.get("@type") == "oa:Choice":
                body = body.get("default")
            if isinstance(body, list):
                body = body[0] if body else None
            if not isinstance(body, dict):
                raise ManifestError(f"{where}: painting annotation has no image resource")
            images.append(body)
        return images

    def _image_uri(self, image: dict[str, Any], where: str) -> str:
        services = image.get("service")
        for service in services if isinstance(services, list) else [services]:
            uri = image_service_uri(service) if isinstance(service, dict) else None
            if uri:
                return uri
        own = self._id(image)
        if not own:
            raise ManifestError(f"{where}: image has neither an id nor an image service")
        return own

    def _rights(self, document: dict[str, Any]) -> str | None:
        if self.version == 3:
            statement = document.get("requiredStatement")
            value = label_text(statement.get("value")) if isinstance(statement, dict) else None
            return document.get("rights") or value
        license_ = document.get("license")
        license_ = license_[0] if isinstance(license_, list) and license_ else license_
        return license_ or label_text(document.get("attribution"))


def image_service_uri(service: Mapping[str, Any]) -> str | None:
    """Full-size image request of a IIIF Image API service (v1, v2 or v3), or None if it is not one."""
    base = str(service.get("id") or service.get("@id") or "").rstrip("/")
    kind = str(service.get("type") or service.get("@type") or "")
    context = str(service.get("@context") or "")
    profile = service.get("profile")
    profiles = profile if isinstance(profile, list) else [profile]
    profile_text = " ".join(p for p in profiles if isinstance(p, str))
    if not base:
        return None
    offered = set(service.get("extraFormats") or [])
    for entry in profiles:
        if isinstance(entry, dict):
            offered |= set(entry.get("formats") or [])
    fmt = next((f for f in PREFERRED_FORMATS if f in offered), "jpg")
    if kind == "ImageService3" or "image/3" in context:
        return f"{base}/full/max/0/default.{fmt}"
    if kind == "ImageService2" or "image/2" in context or "image/2" in profile_text:
        return f"{base}/full/full/0/default.{fmt}"
    if "image/1" in context or "image/1" in profile_text:
        return f"{base}/full/full/0/native.{fmt}"
    return None


def label_text(value: Any) -> str | None:
    """Plain text of a IIIF label or value: a string, a v2 ``@value`` list or a v3 language map."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        tagged = {v["@language"]: v for v in value if isinstance(v, dict) and "@language" in v}
        preferred = next((tagged[lang] for lang in LANGUAGE_PREFERENCE if lang in tagged), None)
        if tagged:  # v2 language alternatives: one of them, not all
            return label_text(preferred or value[0])
        texts = [label_text(v) for v in value]
        return "; ".join(t for t in texts if t) or None
    if isinstance(value, dict):
        if "@value" in value:
            return label_text(value["@value"])
        for language in (*LANGUAGE_PREFERENCE, *value):
            if language in value:
                return label_text(value[language])
    return str(value)


def _dated(pairs: Mapping[str, Any]) -> str | None:
    return next((v for k, v in pairs.items() if k.lower() == "date" and v), None)


def metadata_pairs(entries: Any, where: str) -> dict[str, str]:
    """A IIIF ``metadata`` list as ``{label: value}``."""
    pairs = {}
    for entry in _list(entries, where):
        if not isinstance(entry, dict) or "label" not in entry or "value" not in entry:
            raise ManifestError(f"{where}: each entry needs a label and a value")
        label = label_text(entry["label"])
        if label:
            pairs[label] = label_text(entry["value"]) or ""
    return pairs


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{where} must be a JSON list, got {type(value).__name__}")
    return value
