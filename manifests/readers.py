"""Manifest readers: a manifest (any fsspec URI) -> validated :class:`Item` s, streamed as read.

Formats: CSV (header row), JSON Lines (one object per line), Parquet, and IIIF Presentation
v2/v3 (:mod:`patina.manifests.iiif`). Every reader yields ``(where, record)`` pairs; the item
rules (required fields, unique ids, checksums, supported schemes, relative URIs resolved
against the manifest's location) are applied once, in :func:`items_from_records`.

A collection's own column names map to patina's fields with ``columns`` (``{field: column}``,
the config's ``[manifest.columns]``). Descriptive fields are also found under their names in
any letter case (``Title``, ``DATE``), and the creator as ``photographer``, ``author`` or ``artist``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from patina.manifests import iiif
from patina.manifests.items import DESCRIPTIVE_FIELDS, Item, ManifestError, parse_checksum
from patina.manifests.storage import MAX_KEY_LENGTH, filesystem, output_key, parent_uri, resolve_uri

REQUIRED_FIELDS = ("item_id", "source_uri")
CHECKSUM_FIELDS = ("checksum", "sha256", "md5")
FIELDS = (*REQUIRED_FIELDS, *CHECKSUM_FIELDS, *DESCRIPTIVE_FIELDS)
"""What ``columns`` may map a manifest's own names to."""
ALIASES = {"creator": ("creator", "photographer", "author", "artist")}
Records = Iterable[tuple[str, Mapping[str, Any]]]
Columns = Mapping[str, str]


def renamed(record: Mapping[str, Any], columns: Columns | None) -> dict[str, Any]:
    """``record`` with the manifest's names mapped to patina's fields (``columns``: ``{field: name}``)."""
    out = dict(record)
    for field_name, name in (columns or {}).items():
        if name in out and name != field_name:
            out[field_name] = out.pop(name)
    return out


def _mapped_header(header: list[str], columns: Columns | None, manifest_uri: str) -> list[str]:
    """A CSV/Parquet header with mapped names replaced; a mapped column the header lacks is an error."""
    missing = {f: n for f, n in (columns or {}).items() if n not in header and f not in header}
    if missing:
        named = ", ".join(f"{f} = {n!r}" for f, n in missing.items())
        raise ManifestError(
            f"{manifest_uri}: manifest.columns maps {named}, but the header has no such column; "
            f"header is {list(header)}"
        )
    inverse = {n: f for f, n in (columns or {}).items()}
    return [inverse.get(name, name) for name in header]


def _descriptive(record: Mapping[str, Any]) -> tuple[dict[str, str | None], set[str]]:
    """The descriptive fields of a record (exact name, else any case, else an alias) and the keys used."""
    lowered = {str(k).strip().lower(): k for k in record}
    found: dict[str, str | None] = {}
    used: set[str] = set()
    for name in DESCRIPTIVE_FIELDS:
        found[name] = None
        for alias in ALIASES.get(name, (name,)):
            key = alias if alias in record else lowered.get(alias)
            if key is not None and _text(record[key]):
                found[name], used = _text(record[key]), used | {key}
                break
    return found, used


def items_from_records(records: Records, manifest_uri: str) -> Iterator[tuple[str, Item]]:
    """Validate ``(where, record)`` pairs into ``(where, item)``; ``where`` names the line for errors.

    Every rule but unique ids, which whoever gathers the items checks (:func:`read_manifest` in
    memory; the planner per bucket of ids, see :mod:`patina.manifests.buckets`), with
    :func:`check_unique`.
    """
    base = parent_uri(manifest_uri)
    schemes: dict[str, str | None] = {}
    count = 0
    for where, record in records:
        item_id = _text(_typed(record, "item_id", (str, int), where))
        source = _text(_typed(record, "source_uri", (str,), where))
        if not item_id:
            raise ManifestError(f"{where}: item_id is empty")
        if not source:
            raise ManifestError(f"{where}: source_uri is empty for item {item_id!r}")
        # percent-encoding at most triples an id's bytes: only ids that could be too long are encoded here
        if len(item_id.encode()) * 3 > MAX_KEY_LENGTH and (length := len(output_key(item_id))) > MAX_KEY_LENGTH:
            raise ManifestError(
                f"{where}: item_id {item_id[:40]!r}... is too long: its derivative's file name would be "
                f"{length} characters, more than the {MAX_KEY_LENGTH} a file name can hold; shorten it"
            )
        checksum = None
        for name in CHECKSUM_FIELDS:
            value = _text(record.get(name))
            if value:
                prefixed = value if name == "checksum" or ":" in value else f"{name}:{value}"
                checksum = parse_checksum(prefixed, f"{where} (item {item_id!r})")
                break
        uri = resolve_uri(source, base)
        problem = _scheme_problem(uri, schemes)
        if problem:
            raise ManifestError(f"{where}: item {item_id!r}: {problem}")
        descriptive, used = _descriptive(record)
        skip = {*REQUIRED_FIELDS, *CHECKSUM_FIELDS, *DESCRIPTIVE_FIELDS, *used}
        metadata = {k: v for k, v in record.items() if k not in skip and v not in (None, "")}
        count += 1
        yield where, Item(item_id, uri, checksum, metadata, **descriptive)
    if not count:
        raise ManifestError(f"{manifest_uri}: the manifest lists no items")


def check_unique(entries: Iterable[tuple[str, str]]) -> None:
    """Refuse a repeated id among ``(where, item_id)`` pairs, naming both places."""
    first: dict[str, str] = {}
    for where, item_id in entries:
        if item_id in first:
            raise ManifestError(f"{where}: duplicate item_id {item_id!r} (first at {first[item_id]})")
        first[item_id] = where


def _typed(record: Mapping[str, Any], name: str, types: tuple[type, ...], where: str) -> Any:
    """``record[name]`` when it is None or of ``types`` (bool is no int here); else a clear error."""
    value = record.get(name)
    if value is None or (isinstance(value, types) and not isinstance(value, bool)):
        return value
    wanted = " or ".join("text" if t is str else "an integer" for t in types)
    raise ManifestError(
        f"{where}: {name} is {type(value).__name__} {value!r}, not {wanted}; "
        f"store the {name} column as strings (a path or URI for source_uri)"
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _scheme_problem(uri: str, cache: dict[str, str | None]) -> str | None:
    """Why ``uri``'s scheme cannot be read here (None when it can); checked once per scheme."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if scheme not in cache:
        try:
            fsspec.get_filesystem_class(scheme)
            cache[scheme] = None
        except ValueError:
            cache[scheme] = f"unsupported URI scheme {scheme!r} in {uri!r}"
        except ImportError as exc:
            cache[scheme] = f"URI scheme {scheme!r} needs a library that is not installed: {exc}"
    return cache[scheme]


def csv_records(stream: BinaryIO, manifest_uri: str, columns: Columns | None = None) -> Records:
    """Rows of a CSV manifest with a header row, as they are read."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        reader = csv.DictReader(text, strict=True)
        header = _mapped_header(list(reader.fieldnames or []), columns, manifest_uri)
        reader.fieldnames = header
        _require_columns(header, manifest_uri)
        for row in reader:
            where = f"{manifest_uri} line {reader.line_num}"
            if None in row:
                raise ManifestError(f"{where}: more fields than the header has")
            yield where, row
    except csv.Error as exc:
        raise ManifestError(f"{manifest_uri}: malformed CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest_uri}: not UTF-8 text ({exc})") from exc


def jsonl_records(stream: BinaryIO, manifest_uri: str, columns: Columns | None = None) -> Records:
    """Objects of a JSON Lines manifest, one per non-blank line, as they are read."""
    try:
        for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8-sig"), start=1):
            if not line.strip():
                continue
            where = f"{manifest_uri} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: malformed JSON: {exc.msg} (column {exc.colno})") from exc
            if not isinstance(record, dict):
                raise ManifestError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, renamed(record, columns)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest_uri}: not UTF-8 text ({exc})") from exc


PARQUET_BATCH_ROWS = 10_000


def parquet_records(stream: BinaryIO, manifest_uri: str, columns: Columns | None = None) -> Records:
    """Rows of a Parquet manifest (row numbers count from 1), a batch of rows at a time."""
    try:
        file = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as exc:
        raise ManifestError(f"{manifest_uri}: not a readable Parquet file: {exc}") from exc
    names = _mapped_header(file.schema_arrow.names, columns, manifest_uri)
    _require_columns(names, manifest_uri)
    number, batches = 0, file.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise ManifestError(f"{manifest_uri}: unreadable Parquet after row {number}: {exc}") from exc
        if batch is None:
            return
        for row in batch.rename_columns(names).to_pylist():
            number += 1
            yield f"{manifest_uri} row {number}", row


def iiif_records(stream: BinaryIO, manifest_uri: str, columns: Columns | None = None) -> Records:
    """Canvases of a IIIF manifest (one JSON document, read whole); ``columns`` maps ``metadata`` labels."""
    try:
        document = json.loads(_decode(stream.read(), manifest_uri))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ManifestError(f"{manifest_uri}: malformed JSON at {where}: {exc.msg}") from exc
    for where, record in iiif.records(document, manifest_uri):
        yield where, renamed(record, columns)


LIKELY_NAMES = {
    "item_id": ("id", "identifier", "object_id", "accession", "inventory"),
    "source_uri": ("file", "filename", "path", "uri", "url", "image", "master"),
}
"""Columns a collection's own manifest often names the required fields by (for the hint of a missing one)."""


def _require_columns(header: list[str], manifest_uri: str) -> None:
    missing = [f for f in REQUIRED_FIELDS if f not in header]
    if missing:
        hints = []
        for field in missing:
            guess = next((c for c in header if c.strip().lower() in LIKELY_NAMES.get(field, ())), None)
            hints.append(f'{field} = "{guess or "YOUR COLUMN"}"')
        raise ManifestError(
            f"{manifest_uri}: missing column(s) {missing}; header is {list(header)}; if yours are named otherwise, "
            f"map them in pipeline.toml: [manifest.columns] {', '.join(hints)}"
        )


READERS: dict[str, Callable[[BinaryIO, str, Columns | None], Records]] = {
    ".csv": csv_records,
    ".jsonl": jsonl_records,
    ".ndjson": jsonl_records,
    ".parquet": parquet_records,
    ".json": iiif_records,
}


def iter_manifest(
    manifest_uri: str, storage_options: dict | None = None, columns: Columns | None = None
) -> Iterator[tuple[str, Item]]:
    """``(where, item)`` for each item, validated as the manifest streams in (ids not yet checked unique).

    The reader is chosen by extension; without one, a IIIF manifest is recognised by content.
    ``columns`` (``{patina field: the manifest's name}``) reads a collection's own headers.
    """
    name = manifest_uri.rstrip("/").rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    reader = READERS.get(suffix)
    if reader is None and suffix:
        raise ManifestError(f"{manifest_uri}: unsupported manifest type {suffix!r}; supported: {sorted(READERS)}")
    fs, path = filesystem(manifest_uri, storage_options)
    try:
        stream = fs.open(path, "rb")
    except FileNotFoundError as exc:
        raise ManifestError(f"{manifest_uri}: manifest not found") from exc
    except PermissionError as exc:
        raise ManifestError(f"{manifest_uri}: permission denied reading the manifest") from exc
    with stream:
        if reader is None:  # e.g. https://example.org/iiif/book1/manifest
            if not stream.read(4096).lstrip().startswith(b"{"):
                raise ManifestError(
                    f"{manifest_uri}: no extension and not a IIIF JSON manifest; name it .csv, .jsonl, ..."
                )
            stream.seek(0)
            reader = iiif_records
        yield from items_from_records(reader(stream, manifest_uri, columns), manifest_uri)


def read_manifest(manifest_uri: str, storage_options: dict | None = None, columns: Columns | None = None) -> list[Item]:
    """Every item of a manifest, in memory (see :func:`iter_manifest`); ids must be unique."""
    entries = list(iter_manifest(manifest_uri, storage_options, columns))
    check_unique((where, item.item_id) for where, item in entries)
    return [item for _, item in entries]


def _decode(data: bytes, manifest_uri: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest_uri}: not UTF-8 text ({exc})") from exc
