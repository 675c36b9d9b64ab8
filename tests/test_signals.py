"""SIGTERM to a run, and a terminal's Ctrl-C (SIGINT to its whole process group), stop it gracefully.

What finished is committed, one line says how far it got, the exit status says which signal,
nothing is left in the output (lock, planned rows, temporaries), and a rerun finishes the rest
without doing anything twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from patina.manifests.provenance import read_provenance
from tests.conftest import make_collection
from tests.helpers import slow_run_config

CONFIG = slow_run_config(1.5)
COUNT = 12


def _ok_writes(out: Path) -> list[dict]:
    table = read_provenance(str(out))
    return table.filter(pc.and_(pc.equal(table["stage"], "write"), pc.equal(table["status"], "ok"))).to_pylist()


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["term", "ctrl-c"])
def test_a_signalled_run_stops_gracefully_and_a_rerun_finishes(tmp_path, signum, group):
    manifest = make_collection(tmp_path / "c", count=COUNT, bad=False)
    config = tmp_path / "pipeline.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    command = [sys.executable, "-m", "patina.flows.cli", "run", str(manifest), "-o", str(out), "-c", str(config)]
    run = subprocess.Popen(
        [*command, "--num-cpus", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    deadline = time.monotonic() + 240
    while len(list(out.glob("_provenance/*/part-*.parquet"))) < 2:
        assert run.poll() is None, run.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no provenance committed in time"
        time.sleep(0.1)
    sent = time.monotonic()
    if group:
        os.killpg(run.pid, signum)  # the run, its Ray and Prefect's server all get it, as from a terminal
    else:
        run.send_signal(signum)
    stdout, stderr = run.communicate(timeout=120)
    stopped_in = time.monotonic() - sent
    assert run.returncode == 128 + signum, stderr[-3000:]
    assert stopped_in < 60, stopped_in
    last = stderr.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"patina: interrupted ({name}): "), stderr[-3000:]
    assert "Traceback" not in stderr and "ConnectError" not in stderr and stdout == ""
    leftovers = [p.name for p in out.iterdir() if p.name in ("_lock", "_planned") or p.name.startswith(".tmp")]
    assert leftovers == []
    committed = _ok_writes(out)
    assert 2 <= len(committed) < COUNT
    done = int(last.split(": ")[2].split(" done")[0])
    assert done == len(committed)  # every item it counts as done is committed, and no other
    for row in committed:  # what provenance says was written is there, byte for byte
        assert hashlib.sha256(Path(row["output_uri"]).read_bytes()).hexdigest() == row["output_sha256"]

    again = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["plan"]["unchanged"] == len(committed) and summary["succeeded"] == COUNT - len(committed)
    ids = [row["item_id"] for row in _ok_writes(out)]
    assert sorted(ids) == sorted(f"item/{i}" for i in range(COUNT))  # every item exactly once


def test_a_stop_signal_is_held_while_an_item_is_committed_and_delivered_after():
    from patina.actors.pipeline import signals_deferred

    got: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        with signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            held = list(got)
        assert held == [] and got == [signal.SIGTERM]  # not inside the block; once, to its own handler, after
    finally:
        signal.signal(signal.SIGTERM, previous)
