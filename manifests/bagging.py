"""BagIt packages (RFC 8493) of one run's results, for an archive's own ingest tools, through the Library
of Congress's bagit-python.

The payload of ``patina bag OUT --run RUN --to DEST``:

- ``data/derivatives/KEY``: every derivative the run wrote, as stored under ``OUT/KEY``, each checked
  against the sha256 its provenance recorded (one changed since is refused, by name);
- ``data/provenance/RUN/part-NNNNN.parquet``: the run's provenance parts;
- ``data/premis.xml``: the run's PREMIS 3 export (no local path: :mod:`patina.manifests.published`);
- ``data/report.html``: the run's report, when one was written.

Payload manifests in SHA-256 and SHA-512; ``bag-info.txt`` names the collection(s), the run and the
patina version. The bag is built beside ``DEST`` and moved into place whole: an interrupted or failed
bagging leaves no ``DEST``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import bagit
import pyarrow as pa

from patina import __version__
from patina.manifests.premis import premis_document
from patina.manifests.provenance import SCHEMA, described, provenance_files, report_uri, run_dataset, scan
from patina.manifests.storage import filesystem, join_uri, read_bytes, sha256_hex

CHECKSUMS = ("sha256", "sha512")


class BagError(ValueError):
    """A run that cannot be bagged: no such run, a destination in the way, a derivative changed since."""


@dataclass(frozen=True)
class Bagged:
    path: Path
    derivatives: int
    payload_files: int
    payload_bytes: int


def bag_run(output_uri: str, run_id: str, destination: Path, storage_options: dict | None = None) -> Bagged:
    """Write the BagIt bag of ``run_id``'s results under ``output_uri`` to the local folder ``destination``."""
    destination = Path(destination).absolute()
    if destination.exists():
        raise BagError(f"{destination} already exists: a bag is written to a new folder")
    dataset = run_dataset(output_uri, run_id, storage_options)
    if dataset is None:
        raise BagError(f"no run {run_id!r} under {output_uri}")
    table = pa.Table.from_batches(list(scan(dataset)), schema=SCHEMA)
    rows = table.to_pylist()
    writes = [r for r in rows if r["stage"] == "write" and r["status"] == "ok" and r["output_uri"]]
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _derivatives(writes, output_uri, staging / "derivatives", storage_options)
        fs, parts = provenance_files(output_uri, storage_options, run_id)
        for part in parts.get(run_id, []):
            target = staging / "provenance" / run_id / part.rsplit("/", 1)[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(fs.cat_file(part))
        (staging / "premis.xml").write_bytes(premis_document(table))
        fs, path = filesystem(report_uri(output_uri, run_id), storage_options)
        if fs.exists(path):
            (staging / "report.html").write_bytes(fs.cat_file(path))
        collections = sorted({c for r in rows if r["stage"] == "read" if (c := described([r]).get("collection"))})
        info = {
            "External-Identifier": run_id,
            "External-Description": f"Derivatives restored by patina run {run_id}, with their provenance, "
            "PREMIS 3 record and report; the masters are not included and were not changed.",
            "Bag-Group-Identifier": "; ".join(collections) or "(no collection named in the manifest)",
            "Patina-Run-Id": run_id,
            "Patina-Version": __version__,
            "Patina-Derivatives": str(len(writes)),
        }
        bagit.make_bag(str(staging), bag_info=info, checksums=list(CHECKSUMS), processes=1)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = [p for p in (destination / "data").rglob("*") if p.is_file()]
    return Bagged(destination, len(writes), len(files), sum(p.stat().st_size for p in files))


def _derivatives(writes: list[dict], output_uri: str, folder: Path, storage_options: dict | None) -> None:
    """Copy each written derivative under its key, refusing one whose bytes are not those the run recorded."""
    prefix = output_uri.rstrip("/") + "/"
    for row in writes:
        # where OUT is now: a recorded location elsewhere (OUT copied or moved since) is read under OUT
        key = row["output_uri"].removeprefix(prefix) if row["output_uri"].startswith(prefix) else None
        key = key or row["output_uri"].rsplit("/", 1)[-1]
        uri = join_uri(output_uri, key)
        data = read_bytes(uri, storage_options)
        if row["output_sha256"] and sha256_hex(data) != row["output_sha256"]:
            raise BagError(
                f"{uri} (item {row['item_id']!r}) has changed since run {row['run_id']} wrote it "
                f"(sha256 {sha256_hex(data)}, provenance says {row['output_sha256']}): not bagged"
            )
        target = folder / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def validate_bag(path: Path) -> list[str]:
    """What is wrong with the bag at ``path``, one line per problem naming the file (empty: valid)."""
    try:
        bag = bagit.Bag(str(path))
        bag.validate(processes=1)
    except bagit.BagValidationError as exc:
        details = [str(d) for d in getattr(exc, "details", [])]
        return details or [str(exc)]
    except bagit.BagError as exc:
        return [f"{path}: not a bag: {exc}"]
    return []
