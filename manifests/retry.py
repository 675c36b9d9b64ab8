"""Retries of transient storage errors: capped exponential backoff with jitter.

Transient: throttling and server errors (HTTP 408, 429, 500, 502, 503, 504; S3 ``SlowDown`` and
``ServiceUnavailable``, which s3fs raises as ``EBUSY`` after botocore's own retries), connection
resets, refusals and timeouts. Never retried: a missing object, a refusal (401/403), a bad
checksum, an undecodable file — retrying cannot change those.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from patina.manifests.redaction import redact

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_ERRNO = frozenset(
    {errno.EBUSY, errno.EAGAIN, errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EPIPE}
)
PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (1: no retry); waits ``backoff_s`` x 2^n, at most ``cap_s``, times a jitter in [0.5, 1]."""

    attempts: int = 5
    backoff_s: float = 0.5
    cap_s: float = 20.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.cap_s, self.backoff_s * 2 ** (attempt - 1))
        return base * (rng or random).uniform(0.5, 1.0)


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may succeed (see the module's docstring)."""
    if isinstance(exc, PERMANENT):
        return False
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_STATUS
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNO:
        return True
    name = type(exc).__name__  # aiohttp's connection errors, without importing aiohttp here
    return name in {"ServerDisconnectedError", "ClientConnectionError", "ClientOSError", "ClientPayloadError"}


def retrying(
    call: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    redacting: Callable[[str], str] = redact,
) -> tuple[T, int]:
    """``(call(), attempts used)``; transient errors are retried under ``policy``, others raised at once.

    The error that ends the attempts carries a note saying how many were made. What is logged
    passes through ``redacting`` first (credentials out: :func:`~patina.manifests.redaction.redact`).
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return call(), attempt
        except Exception as exc:
            if attempt == policy.attempts or not is_transient(exc):
                if attempt > 1:
                    exc.add_note(f"{redacting(what)}: gave up after {attempt} attempts")
                raise
            delay = policy.delay(attempt)
            log.warning("%s: %s: %s (attempt %d of %d); again in %.1f s", redacting(what), type(exc).__name__,
                        redacting(str(exc)), attempt, policy.attempts, delay)  # fmt: skip
            sleep(delay)
    raise AssertionError("unreachable")
