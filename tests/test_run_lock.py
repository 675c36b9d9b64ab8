"""One run per output: a live holder refuses others, a dead one (kill -9) is taken over; locally and on S3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import boto3
import pytest

from patina.manifests.run_lock import RunLocked, run_lock
from patina.manifests.storage import TEMPORARY_PREFIX, remove_temporaries

HOLD = """
import sys, time
from patina.manifests.run_lock import run_lock
options = {"client_kwargs": {"endpoint_url": sys.argv[2]}} if len(sys.argv) > 2 else {}
with run_lock(sys.argv[1], "RUN-A", options):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(output, *extra, env=None):
    """Another process holding the lock of ``output`` until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, output, *extra],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_live_holder_refuses_others_and_a_killed_one_is_taken_over(tmp_path, caplog):
    out = str(tmp_path / "out")
    holder = _holder(out)
    try:
        with (
            pytest.raises(RunLocked, match=rf"run RUN-A \(host .+, pid {holder.pid}, started 20\d\d-"),
            run_lock(out, "B"),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock(out, "RUN-C"):  # the kernel released the dead holder's lock
        assert "took over" in caplog.text and "RUN-A" in caplog.text
        with pytest.raises(RunLocked, match="run RUN-C"), run_lock(out, "D"):  # held, even within one process
            pass
    with run_lock(out, "RUN-E"):  # a clean finish leaves nothing to take over
        pass
    assert caplog.text.count("took over") == 1
    assert not (tmp_path / "out" / "_lock").exists()  # an output at rest holds no lock file


def test_on_s3_the_lock_is_a_conditional_write_renewed_until_its_holder_dies(s3_endpoint, monkeypatch, caplog):
    from patina.manifests import run_lock as module

    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="archive")
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    out = "s3://archive/derivatives"
    holder = _holder(out, s3_endpoint, env={**env, "PATINA_LOCK_HEARTBEAT_S": "0.5"})
    monkeypatch.setattr(module, "STALE_S", 3.0)
    try:
        time.sleep(4)  # longer than STALE_S: the holder's renewals keep its lock alive
        with pytest.raises(RunLocked, match=rf"run RUN-A \(host .+, pid {holder.pid}"), run_lock(out, "B", options):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    time.sleep(4)  # no renewals any more: stale
    with run_lock(out, "RUN-C", options):
        assert "took over" in caplog.text and "not renewed" in caplog.text
        with pytest.raises(RunLocked, match="run RUN-C"), run_lock(out, "D", options):
            pass
    keys = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").list_objects_v2(Bucket="archive")
    assert "Contents" not in keys  # released: the lock object is gone


def test_clean_up_tolerates_temporaries_vanishing_under_it(tmp_path):
    """Another writer in the same folder renames its temporaries while the clean-up lists them."""
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            temporary = tmp_path / f"{TEMPORARY_PREFIX}{n}"
            temporary.write_bytes(b"x")
            os.replace(temporary, tmp_path / f"item-{n % 50}.png")
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(300):  # "since" in the future: every temporary is looked at, none is the clean-up's
            assert remove_temporaries(str(tmp_path), time.time() + 3600) == 0
    finally:
        stop.set()
        thread.join()
    assert any(tmp_path.glob("item-*.png"))


@pytest.mark.slow
def test_a_second_patina_run_into_a_held_output_exits_2_naming_the_holder(collection, tmp_path):
    out = tmp_path / "out"
    holder = _holder(str(out))
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
        done = subprocess.run(
            [sys.executable, "-m", "patina.flows.cli", "run", str(collection), "--output", str(out)],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert done.returncode == 2, done.stderr
    assert "is being written by run RUN-A (host" in done.stderr and f"pid {holder.pid}" in done.stderr
    assert not (out / "_provenance").exists()  # nothing was planned or run


def test_prune_waits_for_no_run_it_refuses_while_one_holds_the_output(tmp_path, capsys):
    from patina.flows.cli import main

    out = str(tmp_path / "out")
    holder = _holder(out)
    try:
        assert main(["prune", out]) == 2
        assert "is being written by run RUN-A" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["prune", out]) == 0 and "removed 0 kept intermediate(s)" in capsys.readouterr().out
