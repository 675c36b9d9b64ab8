"""Storage through fsspec: URIs, reads, atomic writes, checksums and safe output keys.

Every path patina touches is a URI (``/local/path``, ``file://``, ``s3://bucket/key``, ...).
Writes are atomic: nothing partial is ever visible under its final name.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import queue
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import fsspec
from fsspec.core import url_to_fs

from patina.manifests.redaction import redact
from patina.models.atomic_files import TEMPORARY_PREFIX, atomic_bytes

T = TypeVar("T")


def filesystem(uri: str, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``uri`` and the path within it."""
    return url_to_fs(uri, **(storage_options or {}))


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in _protocols(fs)


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


class MasterRefused(OSError):
    """A master that is not read: not a regular file, larger than the limit, refused by its first bytes,
    or stalled (nothing arrived for too long). Never retried: the same answer would come again."""


READ_CHUNK = 8 * 2**20
HEAD_BYTES = 64 * 2**10
"""How much of a master is read before ``check_head`` sees it."""

_FILE_KINDS = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
               stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}  # fmt: skip


def read_master(
    uri: str,
    storage_options: dict | None = None,
    *,
    max_bytes: int,
    stall_s: float,
    check_head: Callable[[bytes, int | None], None] | None = None,
) -> bytearray:
    """A master's bytes, read-only: a regular file (or object) of at most ``max_bytes``, read in chunks.

    A local path must be a regular file (a FIFO, device or socket is refused from its ``stat``,
    before it is opened: opening a FIFO blocks). The size is checked before reading where the
    store knows it, and again as bytes arrive. ``check_head(first bytes, size)`` may refuse the
    master from its first :data:`HEAD_BYTES` (not an image) before the rest is read. A read that
    delivers nothing for ``stall_s`` seconds fails with :class:`MasterRefused`; the stalled reader
    is left to its thread, the item fails, the run goes on. The bytes land in one buffer of the
    master's size (where it is known), so reading costs no second copy.
    """
    fs, path = filesystem(uri, storage_options)
    shown = redact(uri)
    if is_local(fs):
        mode = os.stat(path).st_mode  # FileNotFoundError / PermissionError: the caller's messages
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS.items() if test(mode)), "not a regular file")
            raise MasterRefused(f"{shown} is {kind}, not a regular file: masters must be files")
    news: queue.Queue[int | bytearray | BaseException] = queue.Queue()  # bytes so far, then the buffer
    stop = threading.Event()  # the caller gave up: the reader stops at its next chunk
    # HTTP(S): one streamed GET and no HEAD first (fsspec skips it when told a size), so a 403 stays a 403
    web = {"block_size": 0, "size": max_bytes} if set(_protocols(fs)) & {"http", "https"} else {}

    def reader() -> None:
        try:
            with fs.open(path, "rb", **web) as handle:
                size = getattr(handle, "size", None) if not web else None
                size = size if isinstance(size, int) else None
                if size is not None and size > max_bytes:
                    raise MasterRefused(f"{shown} has {size} bytes, more than input.max_bytes = {max_bytes}")
                head = handle.read(HEAD_BYTES)
                if check_head is not None:
                    check_head(head, size)
                buffer = bytearray(size or 0)
                filled = 0
                while chunk := head if filled == 0 else handle.read(READ_CHUNK):
                    end = filled + len(chunk)
                    if end > len(buffer):  # unknown size, or the file grew
                        del buffer[filled:]
                        buffer += chunk
                    else:
                        buffer[filled:end] = chunk
                    filled = end
                    news.put(filled)
                    if stop.is_set():
                        return
            del buffer[filled:]
            news.put(buffer)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            news.put(exc)

    threading.Thread(target=reader, name=f"read {shown}", daemon=True).start()
    try:
        while True:
            try:
                value = news.get(timeout=stall_s)
            except queue.Empty:
                raise MasterRefused(f"reading {shown} stalled: nothing arrived for {stall_s:g} s") from None
            if isinstance(value, bytearray):
                return value
            if isinstance(value, BaseException):
                raise value
            if value > max_bytes:
                raise MasterRefused(f"{shown} has more than input.max_bytes = {max_bytes} bytes")
    finally:
        stop.set()


def source_stamp(uri: str, storage_options: dict | None = None) -> str | None:
    """``size:version`` of a stored object (ETag, else modification time): cheap change detection, None if unknown."""
    info = _info(uri, storage_options)
    return _stamp(info) if info is not None else None


def _info(uri: str, storage_options: dict | None = None) -> dict[str, Any] | None:
    """fsspec's ``info``, or None when it cannot be had (missing, forbidden, or any error of the store's
    client, e.g. botocore refusing a bucket name): planning then reads the master again, never crashes."""
    try:
        fs, path = filesystem(uri, storage_options)
        return fs.info(path)
    except Exception:  # noqa: BLE001 - unknown is an answer: the item is planned again
        return None


def _stamp(info: dict[str, Any]) -> str | None:
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return f"{info.get('size')}:{str(version).strip(chr(34))}" if version is not None else None


LIST_AT = 64
"""Wanted objects in one folder from which one listing of the folder beats one request each."""


def object_facts(
    uris: Iterable[str], pick: Callable[[dict[str, Any]], T], storage_options: dict | None = None, threads: int = 32
) -> dict[str, T | None]:
    """``pick(fsspec info)`` of many files or objects (None: missing or unreadable), in as few requests as can be.

    Folders holding at least :data:`LIST_AT` of them are listed once (S3: a LIST per 1,000
    objects instead of a HEAD per object; the facts are the same); the rest, and web URLs, are
    asked one by one, concurrently on object stores and in turn on a local disk (a stat is
    cheaper than handing it to a thread). Only what ``pick`` keeps is held, not every info.
    """

    def fact(info: dict[str, Any] | None) -> T | None:
        return pick(info) if info is not None else None

    by_folder: dict[str, list[str]] = {}
    for uri in uris:
        by_folder.setdefault(parent_uri(uri), []).append(uri)
    facts: dict[str, T | None] = {}
    remote: list[str] = []
    for folder, wanted in by_folder.items():
        if len(wanted) < LIST_AT or folder.startswith(("http://", "https://")):  # an HTTP folder is no listing
            if is_local(filesystem(folder, storage_options)[0]):
                facts.update((uri, fact(_info(uri, storage_options))) for uri in wanted)
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
            facts[uri] = fact(entry) if entry is not None and entry.get("type") == "file" else None
        del listing
    with ThreadPoolExecutor(threads) as pool:
        facts.update(zip(remote, pool.map(lambda uri: fact(_info(uri, storage_options)), remote), strict=True))
    return facts


def source_stamps(uris: Iterable[str], storage_options: dict | None = None, threads: int = 32) -> dict[str, str | None]:
    """:func:`source_stamp` of many URIs, through :func:`object_facts` (a listing per crowded folder)."""
    return object_facts(uris, _stamp, storage_options, threads)


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


NAME_MAX = 255
"""The longest file name (bytes) local file systems and most object-store gateways accept."""
MAX_KEY_LENGTH = NAME_MAX - len(TEMPORARY_PREFIX) - len(".webp") - len(".0123456789abcdef")
"""The longest :func:`output_key`: with the longest extension and an atomic write's temporary name, it still fits."""


def output_key(item_id: str) -> str:
    """A file name derived from ``item_id`` that is safe on every store and unique per id.

    Everything but ASCII letters, digits, ``-`` and ``_`` is percent-encoded (``/`` and
    ``..`` included), so no id can escape the output prefix and distinct ids never collide.
    """
    if not item_id:
        raise ValueError("item_id must not be empty")
    return quote(item_id, safe="-_").replace(".", "%2E")
