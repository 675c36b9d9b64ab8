import logging

from patina.flows import progress


def test_log_reporter_throttles_but_always_reports_start_and_end(caplog):
    reporter = progress.LogReporter(interval_s=3600)
    with caplog.at_level(logging.INFO, logger="patina.progress"):
        for done in range(0, 11):
            reporter(done, 10, done // 5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("progress: 0/10 items")
    assert lines[1].startswith("progress: 1/10 items")  # first item always shows
    assert lines[-1].startswith("progress: 10/10 items (2 failed)")
    assert len(lines) == 3


def test_terminal_reporter_falls_back_to_log_lines_off_a_terminal():
    with progress.terminal_reporter() as reporter:
        assert isinstance(reporter, progress.LogReporter)


def test_flows_see_the_installed_reporter():
    calls = []
    with progress.reporting(lambda *a: calls.append(a)):
        progress.current()(1, 2, 0)
    assert calls == [(1, 2, 0)]
    assert isinstance(progress.current(), progress.LogReporter)
