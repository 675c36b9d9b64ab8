"""Where a run's messages go (flows/run_log.py), in-process: the standard streams themselves are redirected."""

import logging
import os

from patina.flows.run_log import run_log


def test_quiet_run_sends_foreign_output_to_the_log_and_patina_lines_to_the_terminal(tmp_path, capfd):
    out = tmp_path / "out"
    with run_log(str(out), "RUN1") as console:
        os.write(2, b"[E core_worker.cc] a C++ line\n")  # as Ray's core worker writes: straight to fd 2
        os.write(1, b"(MapWorker pid=1) forwarded worker output\n")
        logging.getLogger("s3fs").warning("Progress bars disabled")  # a library's logger (Ray's own: test_cli)
        logging.getLogger("prefect.flow_runs").info("Beginning flow run")
        logging.getLogger("patina.flows.restore").info("plan: 3 to run")
        console.print("summary line")
    terminal = capfd.readouterr()
    log = (out / "_logs" / "RUN1.log").read_text()
    for line in ("a C++ line", "forwarded worker output", "Progress bars disabled", "Beginning flow run", "plan: 3"):
        assert line in log
    assert "plan: 3 to run" in terminal.err and "summary line" in terminal.err
    for line in ("C++", "forwarded", "Progress bars", "Beginning flow run"):
        assert line not in terminal.err + terminal.out
    os.write(2, b"after the run\n")  # the streams are back
    assert "after the run" in capfd.readouterr().err


def test_verbose_run_shows_everything_and_still_writes_the_log(tmp_path, capfd):
    with run_log(str(tmp_path), "RUN2", verbose=True):
        logging.getLogger("prefect.flow_runs").info("Beginning flow run")
        logging.getLogger("patina.actors.pipeline").debug("a debug line")
    terminal = capfd.readouterr().err
    log = (tmp_path / "_logs" / "RUN2.log").read_text()
    assert "Beginning flow run" in terminal and "a debug line" in terminal
    assert "Beginning flow run" in log and "a debug line" in log
