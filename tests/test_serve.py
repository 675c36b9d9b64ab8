"""`patina serve` against a real `prefect server start` on loopback: the schedule is registered, a run completes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import make_collection

PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process ended with {process.returncode}")
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def prefect_api(tmp_path):
    port = _free_port()
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "server.log", "w")  # closed in finally
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"

    def healthy():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        _wait_for(healthy, 120, "prefect server start", server)
        yield url
    finally:
        _stop(server)
        log.close()


async def _deployment(url: str):
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(url) as client:
        try:
            return await client.read_deployment_by_name("restore-collection/nightly")
        except Exception:  # noqa: BLE001 - not registered yet
            return None


async def _trigger_and_wait(url: str, deployment_id, timeout: float = 240, parameters: dict | None = None):
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(url) as client:
        run = await client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run.id)
            if run.state and run.state.is_final():
                return run
            await asyncio.sleep(2)
    raise AssertionError("the triggered run did not finish in time")


@pytest.mark.slow
def test_serve_registers_a_nightly_schedule_and_runs_it_on_demand(prefect_api, tmp_path):
    manifest = make_collection(tmp_path / "c", count=2, bad=False)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PREFECT_API_URL"] = prefect_api
    log = open(tmp_path / "serve.log", "w")  # closed in finally
    command = [sys.executable, "-m", "patina.flows.cli", "serve", str(manifest), "--output", str(out)]
    serve = subprocess.Popen(
        [*command, "--cron", "30 2 * * *", "--timezone", "Europe/Stockholm"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deployment = _wait_for(lambda: asyncio.run(_deployment(prefect_api)), 120, "the deployment", serve)
        schedules = [s.schedule for s in deployment.schedules]
        assert [(s.cron, s.timezone) for s in schedules] == [("30 2 * * *", "Europe/Stockholm")]
        assert deployment.parameters["output"] == str(out)
        run = asyncio.run(_trigger_and_wait(prefect_api, deployment.id))
        assert run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
        assert len([p for p in out.iterdir() if p.is_file()]) == 2
    finally:
        _stop(serve)
        log.close()


@pytest.mark.slow
def test_deploy_prefect_yaml_registers_the_nightly_deployment_and_a_worker_runs_it(prefect_api, tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PREFECT_API_URL=prefect_api, PATINA_HOME=str(root))
    pool = subprocess.run(
        [PREFECT, "work-pool", "create", "patina", "--type", "process"], capture_output=True, text=True, env=env
    )
    assert pool.returncode == 0, pool.stderr
    deploy = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--prefect-file", "deploy/prefect.yaml", "--all"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
    deployment = asyncio.run(_deployment(prefect_api))
    assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == [("0 2 * * *", "Europe/Stockholm")]
    assert deployment.work_pool_name == "patina"

    manifest = make_collection(tmp_path / "c", count=2, bad=False)
    out = tmp_path / "out"
    log = open(tmp_path / "worker.log", "w")  # closed in finally
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "patina"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        run = asyncio.run(
            _trigger_and_wait(prefect_api, deployment.id, parameters={"manifest": str(manifest), "output": str(out)})
        )
        assert run.state.is_completed(), (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
        assert len([p for p in out.iterdir() if p.is_file()]) == 2
    finally:
        _stop(worker)
        log.close()
