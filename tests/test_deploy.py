"""deploy/: the manifests agree with the code (Ray version, entrypoints, config files, sources)."""

from __future__ import annotations

import re
from pathlib import Path

import ray
import yaml

from patina.flows.config import load_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RAY_MINOR = ".".join(ray.__version__.split(".")[:2])


def _gpu_groups(cluster_spec: dict) -> list[dict]:
    groups = []
    for group in cluster_spec["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        if "nvidia.com/gpu" in limits:
            groups.append(group)
    return groups


def test_raycluster_has_a_gpu_worker_group_on_the_pinned_ray():
    cluster = yaml.safe_load((DEPLOY / "raycluster.yaml").read_text())
    assert cluster["kind"] == "RayCluster" and cluster["spec"]["rayVersion"].startswith(RAY_MINOR)
    assert _gpu_groups(cluster["spec"])
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_rayjob_runs_patina_with_a_config_that_loads():
    job = yaml.safe_load((DEPLOY / "rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and job["spec"]["rayClusterSpec"]["rayVersion"].startswith(RAY_MINOR)
    assert _gpu_groups(job["spec"]["rayClusterSpec"])
    entrypoint = job["spec"]["entrypoint"].split()
    assert entrypoint[:2] == ["patina", "run"]
    config = entrypoint[entrypoint.index("--config") + 1]
    assert config.startswith("/opt/patina/deploy/")
    load_config(DEPLOY / Path(config).name)  # the file the image ships parses as a pipeline config


def test_dockerfile_base_matches_ray_and_copies_every_package():
    text = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^FROM rayproject/ray:(\S+)", text, re.M)
    assert base and base.group(1).startswith(RAY_MINOR)
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    folders = set(re.findall(r'"patina(?:\.\w+)?" = "(\w+)"', pyproject))
    assert folders and all(f"COPY {folder}/ {folder}/" in text for folder in folders)
    assert "ENV PATINA_HOME=/opt/patina" in text  # deploy/prefect.yaml's pull step goes there


def test_prefect_yaml_schedule_is_timezone_aware():
    document = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    (nightly,) = document["deployments"]
    (schedule,) = nightly["schedules"]
    assert schedule["cron"] == "0 2 * * *" and schedule["timezone"] == "Europe/Stockholm"
    assert nightly["entrypoint"] == "flows/restore.py:restore_collection"
    assert (DEPLOY.parent / "flows" / "restore.py").exists()
