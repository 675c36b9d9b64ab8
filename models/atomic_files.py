"""The one way patina replaces a local file whole: a unique temporary beside it, fsynced, renamed over it.

Used for derivatives, provenance parts and reports on local storage (through
:func:`patina.manifests.storage.atomic_write`), and for weights, pins, converted networks,
checkpoints and model cards. A crash leaves the old file or the new one, never a half; a
failed write leaves no temporary; concurrent writers of one path never share a temporary.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"
"""Every temporary starts so: what a crash left behind can be found and removed (storage.remove_temporaries)."""


def temporary_beside(path: Path) -> Path:
    """A fresh name beside ``path`` for a file to be renamed over it. Files made under it with ``open()``
    get the umask's mode (0644 under 022), where tempfile's are 0600 and keep that through the rename."""
    return path.with_name(f"{TEMPORARY_PREFIX}{path.name}.{secrets.token_hex(8)}")


@contextlib.contextmanager
def replacing(path: Path, durable: bool = True) -> Iterator[Path]:
    """A fresh temporary name beside ``path`` to write in the block: it replaces ``path`` when the
    block ends (fsynced first when ``durable``), and is removed when the block fails, so ``path``
    holds a whole file or its old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(path)
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` whole or not at all."""
    with replacing(path, durable) as tmp, open(tmp, "xb") as handle:
        handle.write(data)
