"""Ray execution: actor death mid-run, GPU placement, work spread over a pool."""

from __future__ import annotations

import os
import signal
import threading
import time

import pyarrow.compute as pc
import pytest

from patina.actors.pipeline import GpuUnavailable, place_stages, run_pipeline
from patina.flows.config import parse_config
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import read_manifest
from tests.conftest import make_collection


def _invert_config(**params):
    resources = params.pop("resources", {"batch_size": 1})
    return parse_config(
        {
            "plugins": ["tests.plugin_stages"],
            "stages": ["assess", "enhance"],
            "stage": {"enhance": {"model": "test/fussy-invert@1", "params": params, "resources": resources}},
        }
    )


@pytest.mark.slow
def test_kill_9_of_a_stage_actor_mid_run_loses_and_duplicates_nothing(ray_local, tmp_path):
    manifest = make_collection(tmp_path / "c", count=12, bad=False)
    items = read_manifest(str(manifest))
    pids = tmp_path / "pids"
    pids.mkdir()
    config = _invert_config(sleep_s=0.4, pid_dir=str(pids))
    out = tmp_path / "out"
    done: dict = {}
    runner = threading.Thread(
        target=lambda: done.update(summary=run_pipeline(items, config.run_settings("k", str(out))))
    )
    runner.start()
    deadline = time.monotonic() + 120
    while not list(pids.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = next(pids.iterdir())
    while int(victim.read_text() or 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # two items done, the third in its hands
    os.kill(int(victim.name), signal.SIGKILL)
    runner.join(timeout=240)
    assert not runner.is_alive()
    assert len(list(pids.iterdir())) >= 2  # the actor really died and Ray started another
    summary = done["summary"]
    assert (summary.succeeded, summary.failed) == (12, 0)
    table = read_provenance(str(out))
    for stage in ("read", "assess", "enhance", "write"):
        rows = table.filter(pc.equal(table["stage"], stage))
        ids = rows["item_id"].to_pylist()
        assert sorted(ids) == sorted(i.item_id for i in items), stage  # every item exactly once
        assert set(rows["status"].to_pylist()) == {"ok"}
    enhance_workers = set(table.filter(pc.equal(table["stage"], "enhance"))["worker"].to_pylist())
    # the restarted actor did the work the victim's death lost (results held by a dead actor are redone)
    assert any(not w.endswith(f":{victim.name}") for w in enhance_workers)
    written = [p for p in out.iterdir() if p.is_file()]
    assert len(written) == 12 and not [p for p in written if p.name.startswith(".tmp")]


def test_gpu_stage_on_a_cpu_cluster_fails_fast_naming_the_stage(ray_local, tmp_path):
    manifest = make_collection(tmp_path / "c", count=1, bad=False)
    config = _invert_config(resources={"num_gpus": 0.5})
    started = time.monotonic()
    with pytest.raises(GpuUnavailable, match=r"stage 'enhance' \(test/fussy-invert@1\) asks for 0.5 GPU"):
        run_pipeline(read_manifest(str(manifest)), config.run_settings("g", str(tmp_path / "out")))
    assert time.monotonic() - started < 10
    assert not (tmp_path / "out").exists()


def test_gpu_stage_falls_back_to_the_cpu_when_configured(ray_local, tmp_path):
    manifest = make_collection(tmp_path / "c", count=2, bad=False)
    config = _invert_config(resources={"num_gpus": 1, "gpu_fallback": "cpu"})
    settings = config.run_settings("g", str(tmp_path / "out"))
    assert place_stages(settings, available_gpus=1).stages[1].resources.num_gpus == 1  # a GPU cluster keeps it
    assert place_stages(settings, available_gpus=0).stages[1].resources.num_gpus == 0
    summary = run_pipeline(read_manifest(str(manifest)), settings)
    assert summary.status == "completed"
    devices = read_provenance(str(tmp_path / "out"))["device"].to_pylist()
    assert set(devices) == {"cpu"}


def test_work_spreads_over_every_actor_of_a_pool(ray_local, tmp_path):
    # Enough work (12 x 0.4 s) that the second actor is up before the first could take it all, even when
    # a loaded machine starts actors slowly (8 x 0.2 s once went to one actor in a full-suite run).
    manifest = make_collection(tmp_path / "c", count=12, bad=False)
    config = _invert_config(sleep_s=0.4, resources={"batch_size": 1, "min_actors": 2, "max_actors": 2})
    out = tmp_path / "out"
    assert run_pipeline(read_manifest(str(manifest)), config.run_settings("s", str(out))).status == "completed"
    table = read_provenance(str(out))
    workers = table.filter(pc.equal(table["stage"], "enhance"))["worker"].to_pylist()
    counts = {w: workers.count(w) for w in set(workers)}
    assert len(counts) == 2 and min(counts.values()) >= 2, counts
