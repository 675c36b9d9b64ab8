"""Where a URI really is: masters and outputs compared as resolved locations, never as strings.

The same folder has many spellings: a relative path, ``..``, a symlink, ``file://``, ``s3a://``,
an S3 bucket reached over its HTTP endpoint (path or virtual-host style). :func:`real_location`
maps each to one canonical form (``file:///real/path``, ``s3://bucket/key``), and the masters'
safety checks compare only those:

* :func:`check_output_location` (first wall, when the manifest is read): the output must not be
  a masters' folder or inside one, and no master may live inside the output;
* :func:`refuse_master_target` (second wall, in the writer): a derivative never replaces a file
  that is, by its resolved location, the item's own master or in a masters' folder.
"""

from __future__ import annotations

import functools
import os
import posixpath
import stat
from collections.abc import Iterable
from urllib.parse import urlsplit

from patina.manifests.redaction import redact

LOCAL_SCHEMES = ("file", "local")
S3_SCHEMES = ("s3", "s3a", "s3n")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OutputInsideMasters(ValueError):
    """The output and the masters overlap: the output is a masters' folder, inside one, or holds masters."""


def _split(uri: str) -> tuple[str, str]:
    """(scheme, rest) with local paths as ``file``."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return scheme.lower(), rest
    if uri.startswith("file:"):
        return "file", uri.removeprefix("file:")
    return "file", uri


def _endpoint_hosts(storage_options: dict | None) -> set[str]:
    """``host:port`` of the S3 endpoint the options name (``client_kwargs.endpoint_url`` or ``endpoint_url``)."""
    options = storage_options or {}
    urls = [options.get("endpoint_url"), (options.get("client_kwargs") or {}).get("endpoint_url")]
    return {_host_port(urlsplit(url)) for url in urls if url}


def _host_port(parts) -> str:
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    return f"{(parts.hostname or '').lower()}:{port}"


def _s3_over_http(uri: str, storage_options: dict | None) -> str | None:
    """``s3://bucket/key`` for an HTTP(S) URL of an S3 object (the configured endpoint, or AWS's hosts)."""
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    path = parts.path.lstrip("/")
    if (
        _host_port(parts) in _endpoint_hosts(storage_options)
        or host == "s3.amazonaws.com"
        or (host.startswith("s3.") and host.endswith(".amazonaws.com"))
    ):
        return f"s3://{posixpath.normpath(path)}" if path else None  # path style: /bucket/key
    if ".s3." in host and host.endswith(".amazonaws.com"):
        bucket = host.split(".s3.", 1)[0]  # virtual-host style: bucket.s3[.region].amazonaws.com/key
        return f"s3://{posixpath.normpath(posixpath.join(bucket, path))}"
    return None


def real_location(uri: str, storage_options: dict | None = None) -> str:
    """The canonical form of ``uri``: symlinks, ``..`` and relative parts resolved, scheme spellings unified.

    Local paths (plain, ``file://``, ``file:``) -> ``file://`` + :func:`os.path.realpath` (parts
    that do not exist yet are kept as written); ``s3a://``/``s3n://`` and HTTP(S) URLs of S3
    objects -> ``s3://bucket/key``; other schemes -> ``scheme://`` + the normalised rest
    (credentials dropped, host in lower case, default port removed).
    """
    shown = redact(uri)
    scheme, rest = _split(shown)
    if scheme in LOCAL_SCHEMES:
        return "file://" + os.path.realpath(rest or ".")
    if scheme in S3_SCHEMES:
        return f"s3://{posixpath.normpath(rest.split('?', 1)[0]).lstrip('/')}"
    if scheme in ("http", "https") and (s3 := _s3_over_http(uri, storage_options)) is not None:
        return s3
    if scheme in ("http", "https"):
        parts = urlsplit(shown)
        port = "" if parts.port in (None, _DEFAULT_PORTS[scheme]) else f":{parts.port}"
        return f"{scheme}://{(parts.hostname or '').lower()}{port}{posixpath.normpath(parts.path or '/')}"
    return f"{scheme}://{posixpath.normpath(rest)}"


def _inside(location: str, folder: str) -> bool:
    """Whether ``location`` is ``folder`` or below it (both canonical)."""
    return location == folder or location.startswith(folder.rstrip("/") + "/")


def _written_by_patina(location: str, output: str) -> bool:
    """Whether patina may write ``location`` in ``output``: directly in it (derivatives) or in its ``_`` folders.

    Derivative names never hold a ``/`` (:func:`~patina.manifests.storage.output_key`), so a
    master in an ordinary subfolder of the output cannot be reached by a write.
    """
    if not _inside(location, output) or location == output:
        return False
    relative = location[len(output.rstrip("/")) + 1 :]
    return "/" not in relative or relative.startswith("_")


def _parent(location: str) -> str:
    scheme, rest = location.split("://", 1)
    return f"{scheme}://{posixpath.dirname(rest) or '/'}"


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def master_location(uri: str, storage_options: dict | None = None) -> str:
    """:func:`real_location` of a master, cheaply for the common case: a local master's folder is resolved once
    per folder, and the file itself only when it is a symlink (one ``lstat`` per master)."""
    scheme, rest = _split(uri)
    if scheme not in LOCAL_SCHEMES:
        return real_location(uri, storage_options)
    path = os.path.abspath(rest)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return "file://" + os.path.realpath(path)
    except OSError:  # missing or unreadable: its read fails later, its folder still counts
        pass
    return "file://" + os.path.join(_real_folder(os.path.dirname(path)), os.path.basename(path))


def check_output_location(output_uri: str, source_uris: Iterable[str], storage_options: dict | None = None) -> None:
    """Refuse an output that overlaps the masters, comparing resolved locations (:func:`real_location`).

    The output may be neither a folder that holds masters nor inside one, and no master may lie
    where patina writes in the output (its top level or its ``_`` folders), however either is spelled.
    """
    output = real_location(output_uri, storage_options)
    folders: set[str] = set()
    for uri in source_uris:
        master = master_location(uri, storage_options)
        if _written_by_patina(master, output):
            raise OutputInsideMasters(
                f"output {redact(output_uri)!r} (really {output}) holds masters: {redact(uri)!r} is {master}; "
                "choose an output prefix outside the masters' folders"
            )
        folders.add(_parent(master))
    for folder in sorted(folders):
        if _inside(output, folder):
            raise OutputInsideMasters(
                f"output {redact(output_uri)!r} (really {output}) is inside {folder!r}, which holds masters; "
                "choose an output prefix outside it"
            )


class MasterTarget(OSError):
    """A write would replace a master (the second wall: the planner's check should have refused the run)."""


def refuse_master_target(target_uri: str, master_uri: str, storage_options: dict | None = None) -> None:
    """Raise :class:`MasterTarget` when writing ``target_uri`` could replace ``master_uri`` or its neighbours.

    Called by the writer for every derivative: the target's resolved location must be neither
    the master's nor in the master's resolved folder.
    """
    target = real_location(target_uri, storage_options)
    master = master_location(master_uri, storage_options)
    if target == master or _parent(target) == _parent(master):
        raise MasterTarget(
            f"refusing to write {redact(target_uri)}: it is (or sits beside) the master {redact(master_uri)} "
            f"({master}); masters are never replaced"
        )
