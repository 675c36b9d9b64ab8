"""``patina`` as a user runs it: a subprocess with real Ray and real Prefect."""

import json
import os
import subprocess
import sys

import pytest

from patina.manifests.provenance import read_provenance
from tests.helpers import DEFAULT_STEPS


def _patina(*args, env=None, timeout=300):
    command = [sys.executable, "-m", "patina.flows.cli", *args]
    full_env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    full_env.update(env or {})
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.mark.slow
def test_standalone_run_uses_ephemeral_prefect_and_local_ray(collection, tmp_path):
    out = tmp_path / "out"
    done = _patina("run", str(collection), "--output", str(out), "--num-cpus", "2")
    assert done.returncode == 3, done.stderr  # partial: three bad items
    assert "partial: 4 of 7 items restored, 3 failed" in done.stdout
    for item in ("missing", "corrupt", "tampered"):
        assert item in done.stdout
    assert "progress: 7/7 items (3 failed)" in done.stderr  # plain progress lines off a terminal
    assert "plan: 7 to run (7 new, 0 failed before, 0 masters changed)" in done.stderr
    assert read_provenance(str(out)).num_rows == 7 * len(DEFAULT_STEPS)
    # Quiet: patina's own lines only; Prefect's, Ray's and Ray Data's messages (Python loggers, the
    # core worker's C++ lines, forwarded worker output) are in the run's log file, not on the terminal
    (log,) = (out / "_logs").iterdir()
    text = log.read_text()
    summary_run = done.stdout.split("(run ")[1].split(")")[0].strip()  # the summary may wrap
    assert log.name == f"{summary_run}.log"
    for internal in ("Starting temporary server", "streaming_executor", "Beginning flow run"):
        assert internal in text
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    foreign = [line for line in lines if " INFO patina" not in line and " WARNING patina" not in line]
    assert foreign == [], foreign  # nothing but patina's loggers reached stderr
    assert not any(word in done.stderr for word in ("ray", "Ray Data", "prefect", "core_worker", "MiB"))


@pytest.mark.slow
def test_run_honours_prefect_api_url_and_ray_address(prefect_server, ray_local, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from tests.conftest import make_collection

    manifest = make_collection(tmp_path / "c", count=2, bad=False)
    address = ray_local.get_runtime_context().gcs_address
    done = _patina(
        "run",
        str(manifest),
        "--output",
        str(tmp_path / "out"),
        "--ray-address",
        address,
        "--json",
        "--verbose",
        env={"PREFECT_API_URL": PREFECT_API_URL.value()},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert (summary["status"], summary["succeeded"]) == ("completed", 2)
    assert "Starting temporary server" not in done.stderr
    assert "streaming_executor" in done.stderr and "prefect.flow_runs" in done.stderr  # --verbose shows them
    assert (tmp_path / "out" / "_logs" / f"{summary['run_id']}.log").exists()  # and the log still has them
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    assert any(r.parameters.get("output") == str(tmp_path / "out") and r.state.is_completed() for r in runs)


def test_bad_config_exits_2_naming_the_field(tmp_path):
    config = tmp_path / "pipeline.toml"
    config.write_text("[stage.enhance]\nparams = { gain = 3 }\n")
    done = _patina("run", "m.csv", "--output", str(tmp_path / "o"), "--config", str(config))
    assert done.returncode == 2
    assert "unknown parameter(s) ['gain']" in done.stderr and "pipeline.toml" in done.stderr


@pytest.mark.slow
def test_missing_manifest_exits_2(tmp_path):
    done = _patina("run", str(tmp_path / "none.csv"), "--output", str(tmp_path / "o"), "--json")
    assert done.returncode == 2
    assert "manifest not found" in done.stderr
    answer = json.loads(done.stdout)  # --json answers on every exit
    assert answer["status"] == "error" and answer["exit_code"] == 2 and "manifest not found" in answer["error"]


@pytest.mark.parametrize("command", ["run", "plan"])
def test_credentials_in_the_manifest_or_output_uri_are_refused_before_anything_runs(tmp_path, command):
    uri = "https://archivist:hunter2-secret@example.org/manifest.csv"
    done = _patina(command, uri, "--output", str(tmp_path / "o"), "--json")
    assert done.returncode == 2 and "holds credentials" in done.stderr
    assert "hunter2-secret" not in done.stderr + done.stdout and json.loads(done.stdout)["exit_code"] == 2
    assert not (tmp_path / "o").exists()


def test_summary_with_rich_markup_in_ids_and_errors_is_printed_as_written(capsys):
    from patina.flows.cli import print_summary

    failure = {"item_id": "missing[/x]", "stage": "read", "error_type": "SourceUnavailable"}
    failure["error_message"] = "(403) [bold]when[/bold] [/]"
    summary = {"status": "partial", "total": 2, "succeeded": 1, "failed": 1, "duration_s": 1.0, "run_id": "r[/]"}
    summary |= {"output_uri": "/o[x]", "provenance_uri": "/o[x]/_provenance", "failures": [failure]}
    print_summary(summary)
    out = capsys.readouterr().out
    assert "missing[/x]" in out and "[bold]when" in out and "/o[x]" in out


def test_summary_of_a_run_with_nothing_to_do_says_so(capsys):
    from patina.flows.cli import print_summary

    plan = {"unchanged": 12, "removed": 1, "to_run": 0}
    print_summary({"status": "completed", "total": 0, "output_uri": "/o", "plan": plan, "failures": []})
    out = capsys.readouterr().out
    assert "nothing to do: 12 items unchanged, 1 removed from the manifest" in out


def test_summary_lines_stay_whole_when_stdout_is_a_pipe(capsys):
    from patina.flows.cli import print_summary

    run_id = "20261204T212114Z-7e90d3"
    long = "/archives/collection-with-a-long-name/restored-derivatives-of-the-nightly-run/" + "x" * 40
    summary = {"status": "completed", "total": 12, "succeeded": 12, "failed": 0, "duration_s": 93.4, "run_id": run_id}
    print_summary(summary | {"output_uri": long, "provenance_uri": long + "/_provenance", "failures": []})
    lines = capsys.readouterr().out.splitlines()
    assert any(line.endswith(f"(run {run_id})") for line in lines)  # not split at 80 columns
    assert f"outputs:    {long}" in lines and f"provenance: {long}/_provenance/{run_id}/" in lines
