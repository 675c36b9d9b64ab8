"""Prefect's temporary API server for one command, in a session of its own.

Without ``PREFECT_API_URL`` Prefect starts its ephemeral server as a child in the caller's
process group, so a Ctrl-C at the terminal (SIGINT to the whole group) stops the server at the
moment patina needs it to record how the run ended: every call then retries for minutes and
the run ends with a ``ConnectError``. Ray already shields its own processes from it (they block
SIGINT). This starts the same server (Prefect's ``SubprocessASGIServer`` command: its app and
database under ``PREFECT_HOME``) with ``start_new_session`` (and a parent-death signal, so that it
still ends with patina's process after a ``kill -9``), points this process's Prefect
client at it, and stops it when the process exits (after Prefect's workers have sent what they
hold). A configured ``PREFECT_API_URL`` is used as is.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

PR_SET_PDEATHSIG = 1


def _ending_with_its_parent() -> Any:
    """A ``preexec_fn`` for the server's process: SIGTERM when patina's process ends, however it ends
    (``kill -9`` included: outside the process group, nothing else would stop it). Linux only; the C
    library is loaded here, in the parent, so the child between fork and exec only makes one call."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the server is stopped at exit only
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _own_session_server() -> Any:
    from prefect.server.api.server import SubprocessASGIServer

    class OwnSessionServer(SubprocessASGIServer):
        """Prefect's temporary server, started outside the terminal's process group."""

        _instances: dict[int | None, SubprocessASGIServer] = {}  # noqa: RUF012 - Prefect's per-port singletons

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            original, preexec = subprocess.Popen, _ending_with_its_parent()

            def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
                return original(*args, **kwargs, start_new_session=True, preexec_fn=preexec)

            subprocess.Popen = popen  # type: ignore[misc] - only for Prefect's own call just below
            try:
                return super()._run_uvicorn_command()
            finally:
                subprocess.Popen = original  # type: ignore[misc]

    return OwnSessionServer()


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    """Use ``PREFECT_API_URL`` when set; else a temporary server in its own session for the block."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = _own_session_server()
    server.start()  # stopped at exit, as Prefect stops its own: after its log and event workers have drained
    atexit.register(server.stop)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield
