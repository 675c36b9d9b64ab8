"""Read and write steps of the pipeline: CPU Ray tasks around pure codecs and storage.

Both catch every per-item error into the item's state: a bad scan becomes a failed
provenance row, never a lost block.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from datetime import UTC, datetime

import numpy as np

from patina import __version__
from patina.actors.intermediates import load_intermediate
from patina.actors.item_state import (
    EMPTY_PIXELS,
    ItemState,
    PipelineRow,
    PlannedRow,
    Step,
    WrittenRow,
    decode_mask,
    encode_mask,
)
from patina.actors.settings import RunSettings
from patina.manifests.locations import refuse_master_target
from patina.manifests.provenance import canonical_json, described, source_chain_key
from patina.manifests.redaction import has_credentials, redact, secrets_of
from patina.manifests.retry import is_transient, retrying
from patina.manifests.storage import MasterRefused, atomic_write, join_uri, output_key, read_master, source_stamp
from patina.models.codecs import OUTPUT_FORMATS, DecodeError, check_signature, decode_image, encode_image, output_format
from patina.models.image import pixels_to_transport, transport_to_pixels
from patina.models.image_metadata import HistoryStep, OutputMetadata, xmp_packet

log = logging.getLogger(__name__)

READ_MODEL = "patina/read@1"
WRITE_MODEL = "patina/write@1"
MASKS_DIR = "_masks"


class ChecksumMismatch(ValueError):
    """The master's bytes do not match the checksum the manifest gives."""


class SourceUnavailable(OSError):
    """The master cannot be opened (missing, forbidden, unreachable)."""


def read_item(row: PlannedRow, settings: RunSettings) -> PipelineRow:
    """Fetch a master read-only, check its fixity and decode it into transport pixels."""
    step = Step("read", 0, READ_MODEL, None, {"max_pixels": settings.max_pixels})
    if row.get("resume_uri"):
        try:
            return _resume(row, settings)
        except Exception as exc:  # noqa: BLE001 - an unreadable intermediate: restore from the master
            log.warning("item %s: kept intermediate unusable (%s); reading the master", row["item_id"], exc)
    state = ItemState()
    started = time.time()
    descriptive = row.get("descriptive") or None
    out = dict(row, image=EMPTY_PIXELS, mask=b"", exif=b"")
    attempts = 0
    flag = {"source_uri_redacted": True} if has_credentials(row["source_uri"]) else {}
    try:
        data, attempts = _fetch(row["source_uri"], settings)
        state.source_sha256 = hashlib.sha256(data).hexdigest()
        _verify(row["checksum"], data, state.source_sha256)
        state.chain_key = source_chain_key(state.source_sha256)
        decoded = decode_image(data, settings.max_pixels)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a row
        state.record(row, step, "failed", started, time.time() - started, flag, error=exc, descriptive=descriptive)
    else:
        meta = decoded.metadata
        state.source_format, state.bit_depth = decoded.format, decoded.bit_depth
        state.dpi, state.date_taken = meta.dpi, meta.date_taken
        height, width = decoded.pixels.shape[:2]
        out["image"], out["exif"] = pixels_to_transport(decoded.pixels), meta.exif
        decisions = {
            "format": decoded.format,
            "bit_depth": decoded.bit_depth,
            "width": width,
            "height": height,
            "icc_profile": meta.icc_description,
            "orientation": meta.orientation,
            "dpi": meta.dpi,
            "date_taken": meta.date_taken,
            "warnings": list(meta.notes),
            "source_stamp": source_stamp(row["source_uri"], settings.storage_options),
            "attempts": attempts,
            **flag,
        }
        state.record(row, step, "ok", started, time.time() - started, decisions, descriptive=descriptive)
    out["state"] = state.to_json()
    return out


def _resume(row: PlannedRow, settings: RunSettings) -> PipelineRow:
    """Start an item from a kept intermediate: its pixels, mask and state after the reused steps.

    The reused steps are recorded again, as ``skipped`` with their chain keys, so this run's
    rows describe the whole chain of the derivative it writes.
    """
    now = datetime.fromtimestamp(time.time(), UTC)
    kept = load_intermediate(row["resume_uri"], settings.storage_options)
    stored = ItemState.from_json(kept["state"])
    state = dataclasses.replace(stored, records=[], resume_index=int(row["resume_index"]))
    for record in stored.records:
        decisions = json.loads(record.decisions or "{}")
        if record.stage == "read":  # today's descriptive fields: the manifest may have been edited since
            decisions["resumed_from"] = row["resume_uri"]
            again = {"descriptive": row.get("descriptive") or None}
        else:
            decisions |= {"reason": "reused from a kept intermediate", "intermediate": row["resume_uri"]}
            again = {"status": "skipped", "duration_s": 0.0}
        state.records.append(
            dataclasses.replace(
                record, decisions=canonical_json(decisions), started_at=now, patina_version=__version__, **again
            )
        )
    out = dict(row, image=kept["image"], mask=encode_mask(kept["mask"]), exif=kept["exif"])
    out["state"] = state.to_json()
    return out


def write_item(row: PipelineRow, settings: RunSettings) -> WrittenRow:
    """Encode a restored item, write it atomically under the output prefix, finish its records."""
    state = ItemState.from_json(row["state"])
    started = time.time()
    fmt = settings.output_format if state.failed else output_format(state.source_format, settings.output_format)
    step = write_step(fmt, settings)
    if state.failed:
        state.skip_after_failure(row, step)
        return {"item_id": row["item_id"], "state": state.to_json()}
    try:
        metadata = output_metadata(row, state, settings)
        pixels = transport_to_pixels(row["image"], state.bit_depth)
        data = encode_image(pixels, fmt, settings.jpeg_quality, metadata, settings.tile_compression)
        uri = join_uri(settings.output_uri, output_key(row["item_id"]) + OUTPUT_FORMATS[fmt])
        refuse_master_target(uri, row["source_uri"], settings.storage_options)  # the second wall
        _, attempts = retrying(
            lambda: atomic_write(uri, data, settings.storage_options), settings.retry, f"write {uri}"
        )
        decisions = {"bytes": len(data), "attempts": attempts} | _write_mask(row, settings)
    except Exception as exc:  # noqa: BLE001
        state.record(row, step, "failed", started, time.time() - started, error=exc)
    else:
        digest = hashlib.sha256(data).hexdigest()
        state.advance(step)
        state.record(row, step, "ok", started, time.time() - started, decisions)
        state.records = [dataclasses.replace(r, output_uri=uri, output_sha256=digest) for r in state.records]
    return {"item_id": row["item_id"], "state": state.to_json()}


def mask_uri(output_uri: str, item_id: str) -> str:
    """Where ``output.masks`` keeps an item's damage mask: ``OUT/_masks/KEY.png``."""
    return join_uri(output_uri, MASKS_DIR, output_key(item_id) + ".png")


def _write_mask(row: PipelineRow, settings: RunSettings) -> dict[str, object]:
    """With ``output.masks``: the item's damage mask (white: filled as damage) beside the derivatives."""
    if not settings.masks:
        return {}
    if not row["mask"]:
        return {"mask": None}  # no stage marked anything (or none detects)
    uri = mask_uri(settings.output_uri, row["item_id"])
    atomic_write(uri, bytes(row["mask"]), settings.storage_options)
    return {"mask": uri, "mask_pixels": int(np.count_nonzero(decode_mask(row["mask"])))}


def write_step(fmt: str, settings: RunSettings) -> Step:
    """The write step's identity: its params (format, quality, whether masks are kept) enter the chain key."""
    lossy = fmt == "jpeg" or (fmt == "ptif" and settings.tile_compression == "jpeg")
    params = {"format": fmt, "jpeg_quality": settings.jpeg_quality if lossy else None}
    params |= {"tile_compression": settings.tile_compression} if fmt == "ptif" else {}
    params |= {"masks": True} if settings.masks else {}  # default chains keep their keys
    return Step("write", len(settings.stages) + 1, WRITE_MODEL, None, params)


def output_metadata(row: PipelineRow, state: ItemState, settings: RunSettings) -> OutputMetadata:
    """The derivative's metadata: the master's EXIF and DPI, its processing history and descriptive fields as XMP."""
    steps = [
        HistoryStep(r.stage, r.model_id, r.model_sha256, r.params, r.status)
        for r in state.records
        if r.stage not in ("read", "write")
    ]
    xmp = xmp_packet(
        f"patina {__version__}",
        settings.run_id,
        row["item_id"],
        state.source_sha256,
        steps,
        state.date_taken,
        descriptive=described(state.records),
    )
    return OutputMetadata(bytes(row.get("exif") or b""), tuple(state.dpi) if state.dpi else None, xmp)


def _fetch(uri: str, settings: RunSettings) -> tuple[bytes, int]:
    """The master's bytes and the attempts it took (transient errors are retried, others are not).

    Read as :func:`~patina.manifests.storage.read_master` reads: a regular file of at most
    ``max_bytes``, refused from its first bytes when they are no image, failed when it stalls.
    """

    def read() -> bytes:
        options = settings.storage_options
        return read_master(
            uri, options, max_bytes=settings.max_bytes, stall_s=settings.read_stall_s, check_head=check_signature
        )

    secrets = secrets_of(uri)
    shown = redact(uri)
    try:
        return retrying(read, settings.retry, f"read {shown}", redacting=lambda text: redact(text, secrets))
    except (MasterRefused, DecodeError):
        raise
    except FileNotFoundError as exc:
        raise SourceUnavailable(f"source not found: {shown}") from exc
    except PermissionError as exc:
        raise SourceUnavailable(f"permission denied reading {shown}") from exc
    except Exception as exc:  # e.g. aiohttp's ClientResponseError from an HTTP(S) source
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise SourceUnavailable(f"permission denied reading {shown} (HTTP {status})") from exc
        tries = f" (after {settings.retry.attempts} attempts)" if is_transient(exc) else ""
        cause = redact(str(exc), secrets)
        raise SourceUnavailable(f"cannot read {shown}: {type(exc).__name__}: {cause}{tries}") from exc


def _verify(expected: str, data: bytes, sha256: str) -> None:
    if not expected:
        return
    algo, digest = expected.split(":", 1)
    actual = sha256 if algo == "sha256" else hashlib.new(algo, data).hexdigest()
    if actual != digest:
        raise ChecksumMismatch(f"{algo} mismatch: manifest says {digest}, source bytes have {actual}")
