"""The Item: one scan of a collection, as a manifest describes it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from patina.manifests.redaction import redact

CHECKSUM_PATTERNS = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}


class ManifestError(ValueError):
    """A manifest that cannot be used as a whole (the message names the place and cause, credentials redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


DESCRIPTIVE_FIELDS = ("collection", "title", "date", "creator", "rights")
SOURCE_LINKS = ("iiif_manifest", "iiif_canvas")
"""Where a IIIF item came from (kept in ``metadata``, carried with the descriptive fields)."""


@dataclass(frozen=True)
class Item:
    """One scan to restore.

    ``checksum`` is ``(algorithm, hex digest)`` when the manifest gives one; the descriptive
    fields are plain text when given (``rights``: a rights statement URI or text);
    ``metadata`` keeps every other field of the manifest.
    """

    item_id: str
    source_uri: str
    checksum: tuple[str, str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    collection: str | None = None
    title: str | None = None
    date: str | None = None
    creator: str | None = None
    rights: str | None = None

    def descriptive(self) -> dict[str, Any]:
        """The descriptive fields that are set, the IIIF links, and under ``metadata`` every other field of
        the manifest (as text): what travels to the provenance, XMP, PREMIS and the report."""
        found: dict[str, Any] = {name: getattr(self, name) for name in DESCRIPTIVE_FIELDS if getattr(self, name)}
        found.update({name: str(self.metadata[name]) for name in SOURCE_LINKS if self.metadata.get(name)})
        others = {str(k): str(v) for k, v in self.metadata.items() if k not in SOURCE_LINKS}
        if others:
            found["metadata"] = others
        return found


def parse_checksum(text: str, where: str) -> tuple[str, str] | None:
    """``sha256:<hex>``, ``md5:<hex>`` or a bare 64/32-digit hex digest -> (algorithm, hex)."""
    text = text.strip().lower()
    if not text:
        return None
    algo, _, digest = text.rpartition(":")
    if not algo:
        algo = {64: "sha256", 32: "md5"}.get(len(digest), "")
    pattern = CHECKSUM_PATTERNS.get(algo)
    if pattern is None or not pattern.match(digest):
        raise ManifestError(f"{where}: checksum {text!r} is neither sha256 nor md5 hex")
    return algo, digest
