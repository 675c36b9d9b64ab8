"""Storage through fsspec: URIs, reads, atomic writes, checksums and safe output keys.

Every path patina touches is a URI (``/local/path``, ``file://``, ``s3://bucket/key``, ...).
Writes are atomic: nothing partial is ever visible under its final name.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fsspec
from fsspec.core import url_to_fs

from patina.models.atomic_files import TEMPORARY_PREFIX, atomic_bytes


def filesystem(uri: str, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path within it."""
    return url_to_fs(uri, **(storage_options or {}))


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def join_uri(base: str, *parts: str) -> str:
    """Join path segments onto a URI (``s3://b/out`` + ``x.png`` -> ``s3://b/out/x.png``)."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def resolve_uri(reference: str, base_dir: str) -> str:
    """Resolve a manifest's ``reference`` against the manifest's own directory ``base_dir``."""
    if "://" in reference or reference.startswith("/"):
        return reference
    if "://" in base_dir:
        scheme, rest = base_dir.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, reference))}"
    return os.path.normpath(os.path.join(base_dir, reference))


def parent_uri(uri: str) -> str:
    """The directory part of a URI or path."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest)}"
    return os.path.dirname(os.path.abspath(uri))


def read_bytes(uri: str, storage_options: dict | None = None) -> bytes:
    """All bytes of ``uri``, read-only (one GET on object stores and HTTP, so a 403 stays a 403)."""
    fs, path = filesystem(uri, storage_options)
    return fs.cat_file(path)


def source_stamp(uri: str, storage_options: dict | None = None) -> str | None:
    """``size:version`` of a stored object (ETag, else modification time): cheap change detection, None if unknown."""
    fs, path = filesystem(uri, storage_options)
    try:
        return _stamp(fs.info(path))
    except (FileNotFoundError, PermissionError, OSError):
        return None


def _stamp(info: dict[str, Any]) -> str | None:
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return f"{info.get('size')}:{str(version).strip(chr(34))}" if version is not None else None


LIST_AT = 64
"""Wanted objects in one folder from which one listing of the folder beats one request each."""


def source_stamps(uris: Iterable[str], storage_options: dict | None = None, threads: int = 32) -> dict[str, str | None]:
    """:func:`source_stamp` of many URIs, in as few requests as their layout allows.

    Folders holding at least :data:`LIST_AT` of them are listed once (S3: a LIST per 1,000
    objects instead of a HEAD per object; the stamps are the same); the rest, and web URLs, are
    asked one by one, concurrently on object stores and in turn on a local disk (a stat is
    cheaper than handing it to a thread).
    """
    by_folder: dict[str, list[str]] = {}
    for uri in uris:
        by_folder.setdefault(parent_uri(uri), []).append(uri)
    stamps: dict[str, str | None] = {}
    remote: list[str] = []
    for folder, wanted in by_folder.items():
        if len(wanted) < LIST_AT or folder.startswith(("http://", "https://")):  # an HTTP folder is no listing
            if is_local(filesystem(folder, storage_options)[0]):
                stamps.update((uri, source_stamp(uri, storage_options)) for uri in wanted)
            else:
                remote.extend(wanted)
            continue
        fs, path = filesystem(folder, storage_options)
        try:
            listing = {entry["name"].rstrip("/"): entry for entry in fs.ls(path, detail=True, refresh=True)}
        except (FileNotFoundError, PermissionError, OSError):
            listing = {}
        for uri in wanted:  # a listing's names are the folder's path and the object's name
            entry = listing.get(f"{path.rstrip('/')}/{uri.rstrip('/').rsplit('/', 1)[-1]}")
            stamps[uri] = _stamp(entry) if entry is not None and entry.get("type") == "file" else None
    with ThreadPoolExecutor(threads) as pool:
        stamps.update(zip(remote, pool.map(lambda uri: source_stamp(uri, storage_options), remote), strict=True))
    return stamps


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(uri: str, data: bytes, storage_options: dict | None = None) -> None:
    """Write ``data`` so that ``uri`` holds either its old content or all of ``data``.

    Local files go to a temporary file in the same directory, fsynced, then renamed over the
    target; the file gets the mode a plain ``open()`` would give it under the process umask
    (0644 under 022), so a web server or an ingest user can read what patina wrote. Object
    stores (S3 and the like) publish an object only when its single PUT completes, so a direct
    write is already atomic there.
    """
    fs, path = filesystem(uri, storage_options)
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    atomic_bytes(Path(path), data)  # a temporary beside it, fsynced, renamed over it


def remove_temporaries(uri: str, since: float, storage_options: dict | None = None) -> int:
    """Delete :func:`atomic_write` temporaries under ``uri`` created at or after ``since`` (epoch seconds).

    A worker killed mid-write (kill -9, a lost node) cannot remove its own; once every write
    of the run is done, the run's driver does. Older ones may belong to another run and are
    left alone. Object stores have none (writes are single PUTs). Returns how many it removed.
    """
    fs, path = filesystem(uri, storage_options)
    if not is_local(fs) or not os.path.isdir(path):
        return 0
    removed = 0
    for entry in os.scandir(path):
        if not entry.name.startswith(TEMPORARY_PREFIX):
            continue
        try:  # another writer may rename or remove its temporary under us
            if entry.is_file() and entry.stat().st_mtime >= since:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def output_key(item_id: str) -> str:
    """A file name derived from ``item_id`` that is safe on every store and unique per id.

    Everything but ASCII letters, digits, ``-`` and ``_`` is percent-encoded (``/`` and
    ``..`` included), so no id can escape the output prefix and distinct ids never collide.
    """
    if not item_id:
        raise ValueError("item_id must not be empty")
    return quote(item_id, safe="-_").replace(".", "%2E")


def _normal(uri: str) -> str:
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{posixpath.normpath(rest)}".rstrip("/") + "/"
    if uri.startswith("file:"):
        uri = uri.removeprefix("file:")
    return os.path.abspath(uri).rstrip(os.sep) + os.sep


class OutputInsideMasters(ValueError):
    """The output prefix is a folder of masters, or inside one."""


def check_output_location(output_uri: str, source_uris: list[str]) -> None:
    """Refuse an output prefix equal to or inside a folder holding masters (they must never be overwritten)."""
    output = _normal(output_uri)
    for folder in sorted({_normal(parent_uri(uri)) for uri in source_uris}):
        if output.startswith(folder):
            raise OutputInsideMasters(
                f"output {output_uri!r} is inside {folder!r}, which holds masters; choose an output prefix outside it"
            )
