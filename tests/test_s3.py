"""Masters, manifest, derivatives and provenance on a real S3 endpoint (moto's server on loopback)."""

import dataclasses
import hashlib
import json

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
    config = parse_config({"storage": {"options": {"client_kwargs": {"endpoint_url": s3_endpoint}}}})
    # credentials join the options at run time only (flows/credentials.py): never in the config
    options = {**config.storage.options, "key": "k", "secret": "s"}
    settings = dataclasses.replace(config.run_settings("run-s3", "s3://derivatives/out"), storage_options=options)

    items = read_manifest("s3://masters/coll/manifest.csv", options)
    assert items[0].source_uri == "s3://masters/coll/scan-0.jpg"  # resolved against the manifest
    summary = run_pipeline(items, settings)
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

    # the run's BagIt bag, from S3 to a local folder, with the same credentials
    bag = tmp_path / "bag"
    bagged = subprocess.run(
        [sys.executable, "-m", "patina.flows.cli", "bag", "s3://archive/derivatives", "--to", str(bag)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bagged.returncode == 0, bagged.stderr
    import bagit

    payload = bagit.Bag(str(bag))
    assert payload.is_valid() and payload.info["Patina-Run-Id"] == run_id
    assert sum(p.endswith((".jpg", ".png")) for p in payload.payload_files()) == 4


def test_credentials_in_the_config_are_refused_naming_the_ways_to_give_them():
    from patina.flows.config import ConfigError

    for options in ({"key": "AKIA", "secret": "s3cr3t"}, {"client_kwargs": {"aws_secret_access_key": "s3cr3t"}}):
        with pytest.raises(ConfigError, match=r"credentials in the config \(storage\.options\..*secret_block"):
            parse_config({"storage": {"options": options}}, "pipeline.toml")
    parse_config({"storage": {"options": {"profile": "archive", "client_kwargs": {"endpoint_url": "http://x"}}}})


@pytest.mark.slow
def test_credentials_from_a_prefect_secret_block_are_used_and_stored_nowhere(s3_endpoint, collection, tmp_path):
    """A run on S3 whose only credentials are a Secret block's; afterwards the secret is in no output,
    log, report, PREMIS export or Prefect's database (where every flow-run parameter is kept)."""
    import os
    import subprocess
    import sys

    secret = "pl4nted-s3cr3t-" + os.urandom(4).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_API_URL", "RAY_ADDRESS"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=s3_endpoint)
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="k", aws_secret_access_key="x", region_name="us-east-1"
    )
    s3.create_bucket(Bucket="archive")
    for path in collection.parent.iterdir():
        s3.upload_file(str(path), "archive", f"masters/{path.name}")
    value = {"key": "k", "secret": secret}
    save = f"from prefect.blocks.system import Secret; Secret(value={value!r}).save('archive-s3')"
    subprocess.run([sys.executable, "-c", save], env=env, check=True, capture_output=True, timeout=300)
    config = tmp_path / "pipeline.toml"
    config.write_text('stages = ["assess"]\n[storage]\nsecret_block = "archive-s3"\n')
    out = "s3://archive/derivatives"
    cli = [sys.executable, "-m", "patina.flows.cli"]
    done = subprocess.run(
        [*cli, "run", "s3://archive/masters/manifest.csv", "-o", out, "-c", str(config), "--num-cpus", "2", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # partial: the collection's three bad items
    summary = json.loads(done.stdout)
    assert summary["succeeded"] == 4  # read and written with the block's credentials only
    # the commands that read an output reach it with the same config, the block's credentials only
    export = subprocess.run(
        [*cli, "provenance", "export", out, "-c", str(config)], capture_output=True, text=True, env=env, timeout=120
    )
    assert export.returncode == 0 and "premis" in export.stdout, export.stderr
    later = [
        ["report", out, "-c", str(config)],
        ["iiif", out, "--base-url", "https://archive.example.org/restored", "-c", str(config)],
        ["bag", out, "--to", str(tmp_path / "bag"), "-c", str(config)],
        ["prune", out, "--dry-run", "-c", str(config)],
    ]
    for command in later:
        ran = subprocess.run([*cli, *command], capture_output=True, text=True, env=env, timeout=120)
        assert ran.returncode == 0, (command, ran.stderr)
        assert secret not in ran.stdout + ran.stderr
    without = subprocess.run([*cli, "report", out], capture_output=True, text=True, env=env, timeout=120)
    assert without.returncode == 2  # no credentials without the config: the block is what reaches the bucket
    assert without.stderr.startswith(f"patina: cannot reach {out}: ") and "--config" in without.stderr
    assert "Traceback" not in without.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="archive", Prefix="derivatives/")["Contents"]]
    assert any(k.startswith("derivatives/_logs/") for k in keys) and any("_reports/" in k for k in keys)
    for key in keys:
        assert secret.encode() not in s3.get_object(Bucket="archive", Key=key)["Body"].read(), key
    for text in (done.stdout, done.stderr, export.stdout):
        assert secret not in text
    stored = [p for p in (tmp_path / "prefect").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in stored)
    for path in stored:
        assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("count", [3, 70])  # under and over storage.LIST_AT: one HEAD each, or one listing
def test_source_stamps_in_bulk_equal_one_request_each_on_s3(s3_endpoint, count):
    from patina.manifests.storage import LIST_AT, source_stamp, source_stamps

    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    bucket = f"stamps-{count}"
    s3.create_bucket(Bucket=bucket)
    for i in range(count):
        s3.put_object(Bucket=bucket, Key=f"scans/{i}.tif", Body=b"x" * (i + 1))
    s3.put_object(Bucket=bucket, Key="scans/sub/other.tif", Body=b"y")  # a deeper object: not a wanted file
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}, "key": "k", "secret": "s"}
    uris = [f"s3://{bucket}/scans/{i}.tif" for i in range(count)] + [f"s3://{bucket}/scans/missing.tif"]
    assert (count >= LIST_AT) == (count == 70)
    stamps = source_stamps(uris, options)
    assert stamps == {uri: source_stamp(uri, options) for uri in uris}
    assert stamps[uris[-1]] is None and all(stamps[u] for u in uris[:-1])
    assert stamps[uris[1]].startswith("2:")  # size:ETag
