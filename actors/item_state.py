"""What an item carries through the pipeline: the Ray Data rows between steps, and its state.

The row contract (:class:`PlannedRow` -> :class:`PipelineRow` -> :class:`WrittenRow`):
the planner (:mod:`patina.actors.planning`, ``ROWS_SCHEMA``) makes a planned row per item to run; the read step
(:func:`patina.actors.io_tasks.read_item`) adds the pixels, mask, EXIF and state; each stage
actor rewrites ``image``, ``mask`` and ``state``; the write step shrinks the row to the item id
and its final state, from which the driver commits the provenance records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

import cv2
import numpy as np

from patina import __version__
from patina.manifests.provenance import ProvenanceRecord, canonical_json, chain_key
from patina.manifests.redaction import redact, secrets_of

HOST = socket.gethostname()
EMPTY_PIXELS = np.zeros((1, 1, 3), dtype=np.uint16)  # stands in for the pixels of a failed item


class PlannedRow(TypedDict):
    """One item as the plan hands it to the read step."""

    item_id: str
    source_uri: str
    checksum: str  # ``algo:hex`` from the manifest, or "" (no fixity given)
    resume_index: int  # > 0: start at this step from the kept intermediate at ``resume_uri``
    resume_uri: str  # "" when the item starts from its master
    descriptive: str  # JSON of the manifest's descriptive fields, or ""


class PipelineRow(PlannedRow):
    """One item between the read step and the write step."""

    image: np.ndarray  # uint16 transport pixels (models/image.py); 1x1 for a failed item
    mask: bytes  # PNG bytes of the damage mask (:func:`encode_mask`), b"" for none
    exif: bytes  # the master's EXIF block, b"" for none
    state: str  # :class:`ItemState` as JSON: fixity, source metadata, decisions and records so far


class WrittenRow(TypedDict):
    """One item after the write step: all the driver needs to commit its provenance."""

    item_id: str
    state: str


@dataclass(frozen=True)
class Step:
    """What one pipeline step is, as provenance and the chain key see it."""

    stage: str
    index: int  # 0 = read, then the configured stages, then write
    model_id: str
    model_sha256: str | None
    params: dict[str, Any]
    device: str = "cpu"


@dataclass
class ItemState:
    source_sha256: str | None = None
    chain_key: str | None = None
    failed_stage: str | None = None
    source_format: str = ""
    bit_depth: int = 8
    dpi: tuple[float, float] | None = None
    date_taken: str | None = None
    resume_index: int = 0  # steps before this index were reused from a kept intermediate
    decisions: dict[str, Any] = field(default_factory=dict)
    records: list[ProvenanceRecord] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> ItemState:
        data = json.loads(text)
        return cls(**{**data, "records": [ProvenanceRecord.from_json(r) for r in data["records"]]})

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.dumps({**data, "records": [r.to_json() for r in self.records]}, default=str)

    @property
    def failed(self) -> bool:
        return self.failed_stage is not None

    def record(
        self,
        row: dict[str, Any],
        step: Step,
        status: str,
        started: float,
        duration_s: float,
        decisions: dict[str, Any] | None = None,
        error: BaseException | None = None,
        descriptive: str | None = None,
    ) -> None:
        """Append one provenance record (and mark the item failed when ``error`` is given).

        ``descriptive`` (JSON of the manifest's descriptive fields) goes on the read step's record.
        """
        if error is not None:
            self.failed_stage = step.stage
        self.records.append(
            ProvenanceRecord(
                run_id="",  # stamped by the driver as it commits the record
                item_id=str(row["item_id"]),
                source_uri=redact(str(row["source_uri"])),
                source_sha256=self.source_sha256,
                stage=step.stage,
                stage_index=step.index,
                model_id=step.model_id,
                model_sha256=step.model_sha256,
                params=canonical_json(step.params),
                decisions=canonical_json(decisions or {}),
                chain_key=None if self.failed else self.chain_key,
                status=status,
                error_type=type(error).__name__ if error is not None else None,
                error_message=redact(str(error), secrets_of(str(row["source_uri"]))) if error is not None else None,
                started_at=datetime.fromtimestamp(started, UTC),
                duration_s=round(duration_s, 6),
                host=HOST,
                worker=f"{HOST}:{os.getpid()}",
                device=step.device,
                patina_version=__version__,
                descriptive=descriptive,
            )
        )

    def advance(self, step: Step) -> None:
        """Extend the chain key by a step that succeeded."""
        self.chain_key = chain_key(self.chain_key, step.model_id, step.model_sha256, step.params)

    def skip_after_failure(self, row: dict[str, Any], step: Step) -> None:
        """Record that ``step`` did not run because an earlier stage failed."""
        reason = {"reason": f"not run: stage {self.failed_stage!r} failed"}
        self.record(row, step, "skipped", time.time(), 0.0, decisions=reason)


def encode_mask(mask: np.ndarray | None) -> bytes:
    """Damage mask -> PNG bytes (empty bytes for no mask): compact and Arrow-friendly."""
    if mask is None:
        return b""
    ok, buffer = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise ValueError("could not encode the damage mask")
    return buffer.tobytes()


def decode_mask(data: bytes) -> np.ndarray | None:
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE) > 0
