"""Kept intermediates: each stage's result, stored by its chain key, so an upgrade resumes there.

With ``keep_intermediates`` on, every stage's output of every item is saved as
``<output>/_intermediates/<key[:2]>/<chain key>.npz``: the transport pixels (16 bits), the damage
mask, the master's EXIF and the item's state (fixity, source metadata, decisions, provenance
records so far). The chain key says exactly what produced it, so after an upgrade of stage X the
item restarts from the intermediate of the stage before X. Read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from patina.manifests.storage import atomic_write, join_uri, read_bytes

INTERMEDIATES_DIR = "_intermediates"


def intermediate_uri(output_uri: str, chain_key: str) -> str:
    return join_uri(output_uri, INTERMEDIATES_DIR, chain_key[:2], f"{chain_key}.npz")


def save_intermediate(
    uri: str,
    transport: np.ndarray,
    mask: np.ndarray | None,
    exif: bytes,
    state_json: str,
    storage_options: dict | None = None,
) -> None:
    sink = io.BytesIO()
    np.savez_compressed(
        sink,
        image=transport,
        mask=mask if mask is not None else np.zeros((0, 0), dtype=bool),
        exif=np.frombuffer(exif, dtype=np.uint8),
        state=np.array(state_json),
    )
    atomic_write(uri, sink.getvalue(), storage_options)


def load_intermediate(uri: str, storage_options: dict | None = None) -> dict[str, Any]:
    """``image`` (uint16), ``mask`` (bool array or None), ``exif`` (bytes), ``state`` (JSON text)."""
    with np.load(io.BytesIO(read_bytes(uri, storage_options)), allow_pickle=False) as data:
        mask = data["mask"]
        return {
            "image": data["image"],
            "mask": mask if mask.size else None,
            "exif": data["exif"].tobytes(),
            "state": str(data["state"]),
        }
