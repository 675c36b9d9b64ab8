"""kill -9 of a whole `patina run` mid-run, then the same run again: nothing lost, nothing done twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.compute as pc
import pytest

from patina.manifests.provenance import read_provenance
from tests.conftest import make_collection
from tests.helpers import slow_run_config

CONFIG = slow_run_config(0.5)


def _processes_marked(marker: str) -> list[str]:
    """Command lines of the live processes whose environment holds ``PATINA_TEST_RUN=marker``."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if f"PATINA_TEST_RUN={marker}".encode() not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie is dead, awaiting its parent
                    found.append(command)
        except (OSError, ValueError):  # gone meanwhile, or not a process (/proc/dma)
            continue
    return found


def _command(manifest, out, config):
    return [sys.executable, "-m", "patina.flows.cli", "run", str(manifest), "--output", str(out), "-c", str(config)]


@pytest.mark.slow
def test_kill_9_of_the_whole_run_then_rerun_loses_and_duplicates_nothing(tmp_path):
    manifest = make_collection(tmp_path / "c", count=12, bad=False)
    config = tmp_path / "pipeline.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["PATINA_TEST_RUN"] = marker = f"crash-{os.getpid()}-{time.time_ns()}"  # inherited by all it starts
    first = subprocess.Popen(
        [*_command(manifest, out, config), "--num-cpus", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # the run, its Ray and its Prefect server: one process group to kill
    )
    deadline = time.monotonic() + 180
    while len(list(out.glob("_provenance/*/part-*.parquet"))) < 3:
        assert first.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no provenance committed in time"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    deadline = time.monotonic() + 30  # Prefect's server, in a session of its own, ends with the run
    while (left := _processes_marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], left
    committed = read_provenance(str(out))  # whole parts only: readable after a kill
    done_before = set(
        committed.filter(pc.and_(pc.equal(committed["stage"], "write"), pc.equal(committed["status"], "ok")))[
            "item_id"
        ].to_pylist()
    )
    assert 3 <= len(done_before) < 12
    time.sleep(2)  # let the killed Ray's workers notice their raylet is gone

    second = subprocess.run(
        [*_command(manifest, out, config), "--num-cpus", "2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    assert summary["plan"]["unchanged"] == len(done_before)
    assert summary["total"] == summary["succeeded"] == 12 - len(done_before)

    table = read_provenance(str(out))
    writes = table.filter(pc.and_(pc.equal(table["stage"], "write"), pc.equal(table["status"], "ok")))
    ids = writes["item_id"].to_pylist()
    assert sorted(ids) == sorted(f"item/{i}" for i in range(12))  # every item exactly once
    files = [p.name for p in out.iterdir() if p.is_file()]
    assert len(files) == 12 and not [f for f in files if f.startswith(".tmp")]
