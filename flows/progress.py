"""Progress reporting: a live bar on a terminal, periodic log lines otherwise.

The CLI installs a reporter with :func:`reporting`; the flow reads it with :func:`current`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from rich.console import Console

log = logging.getLogger("patina.progress")

Reporter = Callable[[int, int, int], None]  # (done, total, failed)


class LogReporter:
    """Logs ``done/total`` at the start, the first item, then at most every ``interval_s`` s, and the end."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._start = time.monotonic()
        self._last = float("-inf")
        self._logged = 0  # ``done`` at the last line

    def __call__(self, done: int, total: int, failed: int) -> None:
        now = time.monotonic()
        if done == 0:  # the pipeline starts: measure rates from here
            self._start = now
        if 0 < done < total and self._logged > 0 and now - self._last < self.interval_s:
            return
        self._last, self._logged = now, done
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else ""
        log.info("progress: %d/%d items (%d failed), %.2f items/s%s", done, total, failed, rate, eta)


_current: Reporter | None = None


def current() -> Reporter:
    """The installed reporter, or a :class:`LogReporter`."""
    return _current if _current is not None else LogReporter()


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    global _current
    previous, _current = _current, reporter
    try:
        yield
    finally:
        _current = previous


@contextlib.contextmanager
def terminal_reporter(console: Console | None = None, interval_s: float = 10.0) -> Iterator[Reporter]:
    """A rich progress bar on ``console`` (default: stderr) when it is a terminal, else a :class:`LogReporter`."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield LogReporter(interval_s)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("restoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    # No redirection of sys.stdout/sys.stderr into the bar: other libraries' output belongs to the run's log.
    with Progress(*columns, console=console, transient=False, redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task("restore", total=None, failed=0)

        def update(done: int, total: int, failed: int) -> None:
            bar.update(task, completed=done, total=total, failed=failed)

        yield update
