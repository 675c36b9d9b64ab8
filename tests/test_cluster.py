"""A real two-node Ray cluster on loopback (``ray start --head``, ``ray start --address``) that ``patina run`` joins."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from patina.manifests.provenance import read_provenance
from tests.conftest import make_collection
from tests.helpers import DEFAULT_STEPS

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    with open(log, "w") as handle:
        return subprocess.Popen(
            [RAY, "start", "--block", "--num-cpus=1", "--object-store-memory=150000000", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: the teardown stops exactly this node
        )


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _alive_nodes(address: str) -> int:
    probe = "import ray; ray.init(address=%r, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    done = subprocess.run(
        [sys.executable, "-c", probe % address],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, RAY_AUTH_MODE="disabled"),
    )
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ray-cluster")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _start(
        ["--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false"], logs / "head.log"
    )
    nodes = [head]
    try:
        deadline = time.monotonic() + 90
        while _alive_nodes(address) < 1:
            assert time.monotonic() < deadline, (logs / "head.log").read_text()[-3000:]
            time.sleep(1)
        nodes.append(_start([f"--address={address}", "--node-ip-address=127.0.0.1"], logs / "worker.log"))
        while _alive_nodes(address) < 2:
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-3000:]
            time.sleep(1)
        yield address
    finally:
        for process in reversed(nodes):
            _stop(process)
        # `ray start` records its address for later `ray.init()` calls; a stopped cluster's must not linger
        current = Path(tempfile.gettempdir(), "ray", "ray_current_cluster")
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


@pytest.mark.slow
def test_patina_run_joins_a_two_node_cluster_and_uses_both_nodes(two_node_cluster, tmp_path):
    manifest = make_collection(tmp_path / "c", count=6, bad=True)
    config = tmp_path / "pipeline.toml"
    # 4 stage actors x 0.4 CPU = 1.6 CPUs: more than one 1-CPU node holds, so both nodes take actors.
    config.write_text(
        "[ray]\nio_num_cpus = 0.1\n"
        + "".join(f"[stage.{s}.resources]\nnum_cpus = 0.4\n" for s in ("assess", "detect_damage", "inpaint", "enhance"))
    )
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env["RAY_ADDRESS"] = two_node_cluster  # the standard variable, as a user would set it
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "patina.flows.cli",
            "run",
            str(manifest),
            "--output",
            str(out),
            "-c",
            str(config),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr[-3000:]  # partial: the three bad items
    summary = json.loads(done.stdout)
    assert (summary["succeeded"], summary["failed"]) == (6, 3)
    assert f"Ray: joined the cluster at {two_node_cluster}, 2 node(s), 2 CPU" in done.stderr
    table = read_provenance(str(out))
    assert table.num_rows == 9 * len(DEFAULT_STEPS)
    assert len({w for w in table["worker"].to_pylist()}) >= 5  # 4 stage actors + write tasks, spread over nodes
