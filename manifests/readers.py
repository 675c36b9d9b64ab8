"""Manifest readers: a manifest file (any fsspec URI) -> validated list of :class:`Item`.

CSV is read here; the item rules (required fields, unique ids, checksums, relative URIs
resolved against the manifest's location) are shared by every format.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

from patina.manifests.items import Item, ManifestError, parse_checksum
from patina.manifests.storage import parent_uri, read_bytes, resolve_uri

REQUIRED_FIELDS = ("item_id", "source_uri")
CHECKSUM_FIELDS = ("checksum", "sha256", "md5")


def items_from_records(records: Iterable[tuple[str, Mapping[str, Any]]], manifest_uri: str) -> list[Item]:
    """Validate ``(where, record)`` pairs into items; ``where`` names the line for errors."""
    base = parent_uri(manifest_uri)
    seen: dict[str, str] = {}
    items: list[Item] = []
    for where, record in records:
        item_id = str(record.get("item_id") or "").strip()
        source = str(record.get("source_uri") or "").strip()
        if not item_id:
            raise ManifestError(f"{where}: item_id is empty")
        if not source:
            raise ManifestError(f"{where}: source_uri is empty for item {item_id!r}")
        if item_id in seen:
            raise ManifestError(f"{where}: duplicate item_id {item_id!r} (first at {seen[item_id]})")
        seen[item_id] = where
        checksum = None
        for name in CHECKSUM_FIELDS:
            value = str(record.get(name) or "").strip()
            if value:
                prefixed = value if name == "checksum" or ":" in value else f"{name}:{value}"
                checksum = parse_checksum(prefixed, f"{where} (item {item_id!r})")
                break
        metadata = {
            k: v for k, v in record.items() if k not in (*REQUIRED_FIELDS, *CHECKSUM_FIELDS) and v not in (None, "")
        }
        items.append(Item(item_id, resolve_uri(source, base), checksum, metadata))
    if not items:
        raise ManifestError(f"{manifest_uri}: the manifest lists no items")
    return items


def read_csv_manifest(manifest_uri: str, storage_options: dict | None = None) -> list[Item]:
    """Items of a CSV manifest with a header row containing ``item_id`` and ``source_uri``."""
    text = _text(manifest_uri, storage_options)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = reader.fieldnames or []
        missing = [f for f in REQUIRED_FIELDS if f not in header]
        if missing:
            raise ManifestError(f"{manifest_uri}: missing column(s) {missing}; header is {header}")
        records = []
        for row in reader:
            where = f"{manifest_uri} line {reader.line_num}"
            if None in row:
                raise ManifestError(f"{where}: more fields than the header has")
            records.append((where, row))
    except csv.Error as exc:
        raise ManifestError(f"{manifest_uri}: malformed CSV: {exc}") from exc
    return items_from_records(records, manifest_uri)


READERS = {".csv": read_csv_manifest}


def read_manifest(manifest_uri: str, storage_options: dict | None = None) -> list[Item]:
    """Read a manifest, choosing the reader by file extension."""
    suffix = "." + manifest_uri.rsplit(".", 1)[-1].lower() if "." in manifest_uri else ""
    reader = READERS.get(suffix)
    if reader is None:
        raise ManifestError(f"{manifest_uri}: unsupported manifest type {suffix!r}; supported: {sorted(READERS)}")
    return reader(manifest_uri, storage_options)


def _text(manifest_uri: str, storage_options: dict | None) -> str:
    try:
        data = read_bytes(manifest_uri, storage_options)
    except FileNotFoundError as exc:
        raise ManifestError(f"{manifest_uri}: manifest not found") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest_uri}: not UTF-8 text ({exc})") from exc
