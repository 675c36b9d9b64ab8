"""Kept intermediates: each stage's result, stored by its chain key, so an upgrade resumes there.

With ``keep_intermediates`` on, every stage's output of every item is saved as
``<output>/_intermediates/<key[:2]>/<chain key>.npz``: the transport pixels (16 bits), the damage
mask, the master's EXIF and the item's state (fixity, source metadata, decisions, provenance
records so far). The chain key says exactly what produced it, so after an upgrade of stage X the
item restarts from the intermediate of the stage before X. Read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pyarrow as pa

from patina.manifests.provenance import read_provenance
from patina.manifests.storage import atomic_write, filesystem, join_uri, read_bytes

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


def needed_keys(history: pa.Table, keep_runs: int = 1) -> set[str]:
    """Chain keys recorded by each item's latest ``keep_runs`` runs: the intermediates a rerun may resume from."""
    rows = list(zip(*(history[c].to_pylist() for c in ("item_id", "run_id", "chain_key")), strict=True))
    runs: dict[str, set[str]] = {}
    for item_id, run_id, _ in rows:
        runs.setdefault(item_id, set()).add(run_id)
    recent = {(item, run) for item, ids in runs.items() for run in sorted(ids)[-keep_runs:]}
    return {key for item, run, key in rows if key and (item, run) in recent}


def prune_intermediates(
    output_uri: str,
    keep_runs: int = 1,
    older_than_s: float | None = None,
    dry_run: bool = False,
    storage_options: dict | None = None,
) -> tuple[list[str], int]:
    """Remove kept intermediates no chain key of the latest ``keep_runs`` runs of any item needs.

    With ``older_than_s``, only those not modified for that long. Derivatives and provenance are
    never touched (only ``_intermediates/`` is listed). Returns the removed (or, with ``dry_run``,
    removable) URIs and their bytes. Hold the output's run lock while calling it: a live run's
    new intermediates are not in the provenance yet.
    """
    needed = needed_keys(read_provenance(output_uri, storage_options), keep_runs)
    fs, root = filesystem(join_uri(output_uri, INTERMEDIATES_DIR), storage_options)
    if not fs.exists(root):
        return [], 0
    now = time.time()
    removed, freed = [], 0
    for path, info in sorted(fs.find(root, detail=True).items()):
        name = path.rsplit("/", 1)[-1]
        if not name.endswith(".npz") or name.removesuffix(".npz") in needed:
            continue
        modified = info.get("mtime") or info.get("LastModified")
        modified = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or now)
        if older_than_s is not None and now - modified < older_than_s:
            continue
        if not dry_run:
            fs.rm_file(path)
        removed.append(fs.unstrip_protocol(path))
        freed += int(info.get("size") or 0)
    return removed, freed
