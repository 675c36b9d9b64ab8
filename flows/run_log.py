"""Where a run's messages go: patina's own lines on the terminal, everything in ``OUT/_logs/<run_id>.log``.

Ray and Prefect write to the process's standard streams from Python loggers of their own,
from worker output forwarded to the driver and from C++ (Ray's core worker), so a logging
filter cannot catch them all. During a quiet run both standard file descriptors point at the
run's log file; the terminal is a duplicate of the original stderr, where only patina's
progress, its plan, its warnings and the summary appear. ``--verbose`` keeps the standard
streams on the terminal and shows every logger there too; the log file is written either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console

from patina.manifests.run_lock import OutputNotWritable
from patina.manifests.storage import filesystem, is_local, join_uri

LOGS_DIR = "_logs"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_uri(output_uri: str, run_id: str) -> str:
    """``OUT/_logs/<run_id>.log``."""
    return join_uri(output_uri, LOGS_DIR, f"{run_id}.log")


def terminal_handler(console: Console, level: int) -> logging.Handler:
    """Log lines for the terminal: printed through rich above a live progress bar, plain elsewhere."""
    if console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    return handler


@contextlib.contextmanager
def _standard_streams_to(fd: int) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``fd`` (C++ and forwarded worker output included), then restore them."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {1: os.dup(1), 2: os.dup(2)}
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for target, copy in saved.items():
            os.dup2(copy, target)
            os.close(copy)


def _writable(folder: Path, name: str, output_uri: str) -> Path:
    """``folder/name``, opened for appending once and synced: a full or read-only output fails here,
    before any item is attempted, with :class:`OutputNotWritable` (the CLI's exit status 4)."""
    path = folder / name
    first = logging.makeLogRecord({"name": "patina", "levelname": "INFO", "levelno": logging.INFO, "msg": "log opened"})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as probe:
            probe.write(logging.Formatter(FORMAT).format(first) + "\n")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            if path.stat().st_size == 0:
                path.unlink()
        raise OutputNotWritable.because(output_uri, "the run's log", exc) from exc
    return path


@contextlib.contextmanager
def run_log(
    output_uri: str, run_id: str, *, verbose: bool = False, storage_options: dict | None = None
) -> Iterator[Console]:
    """Route this process's logging and standard streams for one run; yields the terminal's console.

    A local output gets its log file written as the run goes (``tail -f`` works); an object
    store gets it uploaded when the run ends, whatever the outcome.
    """
    fs, path = filesystem(output_uri, storage_options)
    local = is_local(fs)
    scratch = None if local else tempfile.TemporaryDirectory(prefix="patina-log-")
    log_path = Path(path, LOGS_DIR) if local else Path(scratch.name)
    log_path = _writable(log_path, f"{run_id}.log", output_uri)

    terminal: TextIO = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    console = Console(file=terminal)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    root, own = logging.getLogger(), logging.getLogger("patina")
    shown = terminal_handler(console, logging.DEBUG if verbose else logging.INFO)
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [file_handler] + ([shown] if verbose else [])
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        own.addHandler(shown)
    own.info("log: %s", log_uri(output_uri, run_id))
    streams = contextlib.nullcontext() if verbose else _standard_streams_to(file_handler.stream.fileno())
    try:
        with streams:
            yield console
    finally:
        own.removeHandler(shown)
        root.handlers, root.level = saved_handlers, saved_level
        with contextlib.suppress(OSError):  # an output full or gone read-only: its log ends where it could
            file_handler.close()
        terminal.close()
        if scratch is not None:
            try:
                fs.put_file(str(log_path), filesystem(log_uri(output_uri, run_id), storage_options)[1])
            finally:
                scratch.cleanup()
