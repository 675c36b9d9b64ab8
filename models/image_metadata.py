"""Metadata archives keep with their images: EXIF, resolution, and an XMP processing history.

Pure functions over bytes and plain data. :class:`SourceMetadata` is what decoding a master
found; :class:`OutputMetadata` is what a derivative carries: the master's EXIF (orientation
reset, since pixels are stored upright) and DPI, the sRGB profile of its pixels, and an XMP
packet recording who processed it, when and with which models.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from PIL import Image

EXIF_ORIENTATION = 0x0112
EXIF_DATETIME = 0x0132
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_HEADER = b"Exif\x00\x00"


@dataclass(frozen=True)
class SourceMetadata:
    """What decoding a master found beside its pixels."""

    exif: bytes = b""  # EXIF block (``Exif\\0\\0`` + TIFF data), orientation reset to 1; empty if none
    dpi: tuple[float, float] | None = None
    date_taken: str | None = None  # EXIF DateTimeOriginal (else DateTime), ``YYYY:MM:DD HH:MM:SS``
    orientation: int = 1  # the EXIF orientation that was applied to the pixels
    icc_description: str | None = None  # the master's embedded profile (None: untagged, taken as sRGB)
    notes: tuple[str, ...] = ()  # warnings for provenance (multi-page, animation, ...)


@dataclass(frozen=True)
class HistoryStep:
    """One processing step as the XMP history records it."""

    stage: str
    model_id: str
    model_sha256: str | None
    params: str  # canonical JSON
    status: str


@dataclass(frozen=True)
class OutputMetadata:
    """What a derivative embeds besides its sRGB profile."""

    exif: bytes = b""
    dpi: tuple[float, float] | None = None
    xmp: bytes = b""


def read_exif(image: Image.Image) -> tuple[bytes, int, str | None]:
    """``(exif bytes with orientation 1, original orientation, date taken)`` of an opened image."""
    exif = image.getexif()
    if not exif:
        return b"", 1, None
    orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
    sub = exif.get_ifd(EXIF_IFD)  # loads the Exif sub-IFD so that tobytes() keeps it
    date = sub.get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
    if EXIF_ORIENTATION in exif:
        exif[EXIF_ORIENTATION] = 1
    try:
        data = exif.tobytes()
    except (ValueError, struct.error, TypeError):  # an EXIF block Pillow cannot rewrite: drop it, keep the date
        data = b""
    return data, orientation if 1 <= orientation <= 8 else 1, _clean(date)


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip("\x00 ")
    return text or None


def xmp_packet(
    software: str,
    run_id: str,
    item_id: str,
    source_sha256: str | None,
    steps: Sequence[HistoryStep],
    date_taken: str | None = None,
    when: datetime | None = None,
    descriptive: Mapping[str, str] | None = None,
) -> bytes:
    """An XMP packet (UTF-8) with the processing history (``xmpMM:History``) of a derivative.

    Each step is an ``stEvt`` event (action ``processed``, software agent = patina and the
    model, parameters = stage, model id, weights sha256 and params). The run and source
    fixity sit in patina's own namespace; the date taken is kept as ``exif:DateTimeOriginal``.
    ``descriptive`` (the manifest's fields) becomes Dublin Core and XMP Rights: see
    :func:`descriptive_xmp`.
    """
    stamp = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    events = "".join(
        "<rdf:li rdf:parseType='Resource'>"
        "<stEvt:action>processed</stEvt:action>"
        f"<stEvt:when>{stamp}</stEvt:when>"
        f"<stEvt:softwareAgent>{escape(f'{software} {s.model_id}')}</stEvt:softwareAgent>"
        f"<stEvt:changed>{escape(s.stage)}</stEvt:changed>"
        f"<stEvt:parameters>{escape(_step_text(s))}</stEvt:parameters></rdf:li>"
        for s in steps
    )
    taken = f" exif:DateTimeOriginal={quoteattr(_xmp_date(date_taken))}" if date_taken else ""
    body = (
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'>"
        "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        "<rdf:Description rdf:about=''"
        " xmlns:xmp='http://ns.adobe.com/xap/1.0/'"
        " xmlns:xmpMM='http://ns.adobe.com/xap/1.0/mm/'"
        " xmlns:stEvt='http://ns.adobe.com/xap/1.0/sType/ResourceEvent#'"
        " xmlns:exif='http://ns.adobe.com/exif/1.0/'"
        " xmlns:dc='http://purl.org/dc/elements/1.1/'"
        " xmlns:xmpRights='http://ns.adobe.com/xap/1.0/rights/'"
        " xmlns:patina='https://github.com/patina-restoration/patina/ns/1.0/'"
        f" xmp:CreatorTool={quoteattr(software)} xmp:MetadataDate={quoteattr(stamp)}"
        f" patina:runId={quoteattr(run_id)} patina:itemId={quoteattr(item_id)}"
        f" patina:sourceSha256={quoteattr(source_sha256 or '')}{taken}>"
        f"{descriptive_xmp(descriptive or {})}<xmpMM:History><rdf:Seq>{events}</rdf:Seq></xmpMM:History>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    return f"<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>{body}<?xpacket end='w'?>".encode()


def descriptive_xmp(fields: Mapping[str, str]) -> str:
    """XMP properties of a manifest's descriptive fields.

    ``dc:title`` and ``dc:rights`` (language alternatives, x-default), ``dc:creator`` and
    ``dc:date`` (ordered arrays), ``xmpRights:WebStatement`` when the rights are a URI (a
    rightsstatements.org or Creative Commons statement), ``dc:source`` the IIIF canvas, and
    the collection and IIIF manifest in patina's namespace.
    """

    def alt(name: str, value: str) -> str:
        return f"<{name}><rdf:Alt><rdf:li xml:lang='x-default'>{escape(value)}</rdf:li></rdf:Alt></{name}>"

    def seq(name: str, value: str) -> str:
        return f"<{name}><rdf:Seq><rdf:li>{escape(value)}</rdf:li></rdf:Seq></{name}>"

    def simple(name: str, value: str) -> str:
        return f"<{name}>{escape(value)}</{name}>"

    rights = fields.get("rights")
    parts = [
        alt("dc:title", fields["title"]) if fields.get("title") else "",
        seq("dc:creator", fields["creator"]) if fields.get("creator") else "",
        seq("dc:date", fields["date"]) if fields.get("date") else "",
        alt("dc:rights", rights) if rights else "",
        simple("xmpRights:WebStatement", rights) if rights and rights.startswith(("http://", "https://")) else "",
        simple("dc:source", fields["iiif_canvas"]) if fields.get("iiif_canvas") else "",
        simple("patina:collection", fields["collection"]) if fields.get("collection") else "",
        simple("patina:iiifManifest", fields["iiif_manifest"]) if fields.get("iiif_manifest") else "",
    ]
    return "".join(parts)


def _step_text(step: HistoryStep) -> str:
    sha = step.model_sha256 or "-"
    return f"stage={step.stage}; model={step.model_id}; sha256={sha}; status={step.status}; params={step.params}"


def _xmp_date(exif_date: str) -> str:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` -> XMP ``YYYY-MM-DDTHH:MM:SS`` (other text kept as is)."""
    try:
        return datetime.strptime(exif_date, "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return exif_date


def png_with_metadata(png: bytes, icc: bytes, meta: OutputMetadata) -> bytes:
    """Insert ``iCCP``, ``pHYs``, ``eXIf`` and XMP ``iTXt`` chunks after a PNG's ``IHDR``.

    Used for every PNG patina writes (8- and 16-bit alike), so all carry the same metadata.
    """
    signature, ihdr_end = png[:8], 8 + 12 + struct.unpack(">I", png[8:12])[0]
    if signature != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    chunks = [_chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc))]
    if meta.dpi:
        ppm = [max(1, round(d / 0.0254)) for d in meta.dpi]
        chunks.append(_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    if meta.exif:
        chunks.append(_chunk(b"eXIf", meta.exif.removeprefix(EXIF_HEADER)))
    if meta.xmp:
        chunks.append(_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + meta.xmp))
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
