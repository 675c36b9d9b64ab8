"""Masters, manifest, derivatives and provenance on a real S3 endpoint (moto's server on loopback)."""

import hashlib

import boto3
import pytest

from patina.actors.pipeline import run_pipeline
from patina.flows.config import parse_config
from patina.manifests.provenance import read_provenance
from patina.manifests.readers import read_manifest
from tests.helpers import DEFAULT_STEPS


def test_collection_on_s3_round_trips(ray_local, s3_endpoint, collection):
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    for bucket in ("masters", "derivatives"):
        s3.create_bucket(Bucket=bucket)
    for path in collection.parent.iterdir():
        s3.upload_file(str(path), "masters", f"coll/{path.name}")
    masters_before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket="masters")["Contents"]}
    options = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": s3_endpoint}}
    config = parse_config({"storage": {"options": options}})

    items = read_manifest("s3://masters/coll/manifest.csv", options)
    assert items[0].source_uri == "s3://masters/coll/scan-0.jpg"  # resolved against the manifest
    summary = run_pipeline(items, config.run_settings("run-s3", "s3://derivatives/out"))
    assert (summary.succeeded, summary.failed) == (4, 3)

    table = read_provenance("s3://derivatives/out", options)
    assert table.num_rows == 7 * len(DEFAULT_STEPS)
    written = {
        r["output_uri"]: r["output_sha256"] for r in table.to_pylist() if r["stage"] == "write" and r["output_uri"]
    }
    assert len(written) == 4
    for uri, digest in written.items():
        key = uri.removeprefix("s3://derivatives/")
        body = s3.get_object(Bucket="derivatives", Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest
    masters_after = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket="masters")["Contents"]}
    assert masters_after == masters_before  # masters untouched


@pytest.mark.slow
def test_cli_takes_s3_endpoint_and_credentials_from_aws_variables(s3_endpoint, collection, tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env.update(
        AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=s3_endpoint
    )
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    s3.create_bucket(Bucket="archive")
    for path in collection.parent.iterdir():
        s3.upload_file(str(path), "archive", f"masters/{path.name}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "patina.flows.cli",
            "run",
            "s3://archive/masters/manifest.csv",
            "--output",
            "s3://archive/derivatives",
            "--num-cpus",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="archive", Prefix="derivatives/")["Contents"]]
    assert sum(k.endswith((".jpg", ".png")) for k in keys) == 4
    assert any(k.startswith("derivatives/_provenance/") and k.endswith(".parquet") for k in keys)
    run_id = __import__("json").loads(done.stdout)["run_id"]
    log = s3.get_object(Bucket="archive", Key=f"derivatives/_logs/{run_id}.log")["Body"].read().decode()
    assert "streaming_executor" in log and "Beginning flow run" in log  # the run's log, uploaded at its end
