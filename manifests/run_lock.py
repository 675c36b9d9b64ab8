"""One run at a time per output: ``OUT/_lock`` names the run that holds it.

Locally the lock is an exclusive ``flock`` on ``OUT/_lock``: the kernel releases it when the
holder's process ends, however it ends, so a holder killed with ``kill -9`` never blocks the
next run (which notes that it took over). A run that finishes removes the file, so an output
at rest holds none. On an object store the lock is an object created
with a conditional write (``If-None-Match: *``), so two hosts cannot both create it; its holder
renews it every ``heartbeat_s`` seconds, and a lock not renewed for ``stale_s`` seconds belongs
to a dead run: it is taken over by a write conditional on its ETag (``If-Match``), so only one
taker wins. A run refused the lock gets :class:`RunLocked` naming the holder (run id, host,
pid, when it started).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patina.manifests.storage import filesystem, is_local, join_uri

log = logging.getLogger(__name__)

LOCK_NAME = "_lock"
HEARTBEAT_S = float(os.environ.get("PATINA_LOCK_HEARTBEAT_S", "30"))
STALE_S = float(os.environ.get("PATINA_LOCK_STALE_S", "120"))


class RunLocked(RuntimeError):
    """Another live run holds the output."""


class OutputNotWritable(OSError):
    """The output cannot be written (no space left, read-only, permissions): the path and what follows are named."""

    consequence = "no item was attempted: free space or fix permissions, rerun"

    @classmethod
    def because(cls, output_uri: str, what: str, exc: OSError, *, mid_run: bool = False) -> OutputNotWritable:
        made = cls(exc.errno, f"{output_uri}: cannot write {what}: {exc.strerror or exc}")
        if mid_run:
            made.consequence = "the items committed so far are kept: free space or fix permissions, rerun to finish"
        return made


def _holder(run_id: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "started_at": now, "renewed_at": now}


def _describe(holder: dict[str, Any]) -> str:
    return (
        f"run {holder.get('run_id', '?')} (host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"started {holder.get('started_at', '?')})"
    )


def _refused(output_uri: str, holder: dict[str, Any]) -> RunLocked:
    return RunLocked(
        f"{output_uri} is being written by {_describe(holder)}; wait for it to finish "
        "(a run that died releases the output by itself)"
    )


@contextlib.contextmanager
def run_lock(output_uri: str, run_id: str, storage_options: dict | None = None) -> Iterator[None]:
    """Hold ``OUT/_lock`` for the duration of the block, or raise :class:`RunLocked`."""
    fs, path = filesystem(output_uri, storage_options)
    holder = _holder(run_id)
    if is_local(fs):
        with _local_lock(Path(path), output_uri, holder):
            yield
    else:
        with _object_lock(fs, join_uri(path, LOCK_NAME), output_uri, holder):
            yield


@contextlib.contextmanager
def _local_lock(folder: Path, output_uri: str, holder: dict[str, Any]) -> Iterator[None]:
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _locked(path, output_uri)
    except PermissionError as exc:
        raise OutputNotWritable.because(output_uri, "the run lock", exc) from exc
    try:
        previous = _parse(os.pread(fd, 65536, 0))
        if previous:  # a holder that finishes removes the file: this one died
            log.warning("took over %s from %s, which is no longer running", output_uri, _describe(previous))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError as exc:  # a full disk: the lock (one small file) is the first thing a run writes
            os.unlink(path)
            raise OutputNotWritable.because(output_uri, "the run lock", exc) from exc
        try:
            yield
        finally:
            try:  # still holding it: nobody can hold this file now, a newcomer makes a new one
                os.unlink(path)
            except OSError as exc:  # the output became unwritable: released all the same (the flock goes)
                log.warning("could not remove the run lock %s (%s); the next run takes it over", path, exc.strerror)
    finally:
        os.close(fd)  # releases the flock


def _locked(path: Path, output_uri: str) -> int:
    """An open descriptor of ``path`` holding its exclusive flock, or :class:`RunLocked`.

    A holder removes the file as it finishes, so a descriptor locked after that removal locks
    a file nobody else will open: then the file at ``path`` (a new one) is tried again.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _parse(os.pread(fd, 65536, 0))
            os.close(fd)
            raise _refused(output_uri, holder) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@contextlib.contextmanager
def _object_lock(fs: Any, key: str, output_uri: str, holder: dict[str, Any]) -> Iterator[None]:
    etag = _create(fs, key, holder)
    if etag is None:
        current, current_etag = _read(fs, key)
        if not current_etag:  # released between the two calls
            etag = _create(fs, key, holder)
            if etag is None:
                raise _refused(output_uri, _read(fs, key)[0])
    if etag is None:
        age = time.time() - _timestamp(current.get("renewed_at"))
        if current and age < STALE_S:
            raise _refused(output_uri, current)
        etag = _replace(fs, key, holder, current_etag)
        if etag is None:  # another run took it over first
            raise _refused(output_uri, _read(fs, key)[0])
        log.warning("took over %s from %s, not renewed for %.0f s", output_uri, _describe(current), age)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(fs, key, holder, etag, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with contextlib.suppress(FileNotFoundError):
            fs.rm(key)


def _create(fs: Any, key: str, holder: dict[str, Any]) -> str | None:
    """Create the lock object only if there is none (``If-None-Match: *``); its ETag, or None."""
    try:
        out = fs.pipe_file(key, json.dumps(holder).encode(), mode="create")
    except OSError as exc:  # FileExistsError where s3fs recognises the failed condition
        if _exists(fs, key):
            return None
        raise exc
    return _etag(out, fs, key)


def _replace(fs: Any, key: str, holder: dict[str, Any], etag: str | None) -> str | None:
    """Overwrite the lock only if it is still the object read (``If-Match``); the new ETag, or None."""
    holder = dict(holder, renewed_at=datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        out = fs.pipe_file(key, json.dumps(holder).encode(), IfMatch=etag) if etag else None
    except OSError:  # the condition failed, or the object is gone
        return None
    return _etag(out, fs, key) if out is not None else None


def _renew(fs: Any, key: str, holder: dict[str, Any], etag: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        renewed = _replace(fs, key, holder, etag)
        if renewed is None:
            log.error("lost the run lock %s: another run took it over", key)
            return
        etag = renewed


def _exists(fs: Any, key: str) -> bool:
    fs.invalidate_cache(key)
    return fs.exists(key)


def _read(fs: Any, key: str) -> tuple[dict[str, Any], str | None]:
    fs.invalidate_cache(key)
    try:
        info = fs.info(key)
        return _parse(fs.cat_file(key)), info.get("ETag")
    except FileNotFoundError:
        return {}, None


def _etag(out: Any, fs: Any, key: str) -> str | None:
    if isinstance(out, dict) and out.get("ETag"):
        return out["ETag"]
    return _read(fs, key)[1]


def _timestamp(text: str | None) -> float:
    try:
        return datetime.fromisoformat(text).timestamp() if text else 0.0
    except ValueError:
        return 0.0
