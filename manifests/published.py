"""What a record meant for others may say about where files are: web and object-storage URIs as they are,
local filesystem locations only when asked for (a path names a machine, a user, a folder layout).

Used by the IIIF export (published on the web) and the PREMIS export (handed to other systems): a local
master appears by its item id, a local derivative by its item id and role.
"""

from __future__ import annotations

from pathlib import Path

PUBLIC_SCHEMES = ("http://", "https://", "s3://", "gs://", "gcs://", "az://", "abfs://", "abfss://")


def is_public(location: str) -> bool:
    """A web or object-storage URI (anyone with access resolves it the same way); not a local path."""
    return location.startswith(PUBLIC_SCHEMES)


def file_uri(location: str) -> str:
    """A local location as a ``file://`` URI (a path made absolute; a ``file://`` URI as it is)."""
    return location if location.startswith("file://") else Path(location).absolute().as_uri()


def identifier(location: str, item_id: str, role: str, include_paths: bool = False) -> tuple[str, str]:
    """``(type, value)`` naming ``location`` in a shared record: ``("URI", uri)`` for a public URI or, with
    ``include_paths``, a local file's ``file://`` URI; else ``("local", "ROLE/ITEM")`` (``master/astronaut``)."""
    if is_public(location):
        return "URI", location
    if include_paths:
        return "URI", file_uri(location)
    return "local", f"{role}/{item_id}"
