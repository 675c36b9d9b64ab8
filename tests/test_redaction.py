"""Credentials in a master's URI are never stored, logged, shown or exported.

A real ``patina run`` restores masters reached with userinfo (HTTP and S3 spellings) and a
pre-signed URL; every place a run leaves text is then searched for each planted secret.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from patina.manifests.provenance import read_provenance
from patina.manifests.redaction import MARK, has_credentials, redact, secrets_of
from patina.models.image import to_uint8
from tests.helpers import scene

SECRETS = ("pass-SECRET-1", "SIGSECRET2", "AKIASECRET3", "s3SECRET4", "AKIACRED5", "tokSECRET6")


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("s3://AKIASECRET3:s3SECRET4@bucket/x.jpg", "s3://bucket/x.jpg"),
        ("https://user:pass-SECRET-1@host/x.jpg", "https://host/x.jpg"),
        (
            "https://h/x.jpg?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIACRED5%2F2026&X-Amz-Signature=SIGSECRET2",
            f"https://h/x.jpg?X-Amz-Algorithm=AWS4&X-Amz-Credential={MARK}&X-Amz-Signature={MARK}",
        ),
        ("https://acct.blob.core.windows.net/c/x.jpg?sv=2022&sig=tokSECRET6", f"https://acct.blob.core.windows.net/c/x.jpg?sv=2022&sig={MARK}"),
        ("/archive/scans/user@host.tif", "/archive/scans/user@host.tif"),  # no scheme: no userinfo
        ("https://host/x.jpg?version=2", "https://host/x.jpg?version=2"),
    ],
)  # fmt: skip
def test_redact_removes_userinfo_and_signing_values(uri, shown):
    assert redact(uri) == shown
    assert has_credentials(uri) == (uri != shown)
    assert not any(secret in redact(f"failed to read {uri}: boom") for secret in SECRETS)


def test_secrets_quoted_without_their_scheme_are_redacted_too():
    uri = "s3://AKIASECRET3:s3SECRET4@bucket/x.jpg"
    message = 'Invalid bucket name "AKIASECRET3:s3SECRET4@bucket": Bucket name must match the regex'
    assert not any(secret in redact(message, secrets_of(uri)) for secret in SECRETS)


def _texts_under(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in folder.rglob("*") if p.is_file() and p.suffix != ".parquet"]


@pytest.mark.slow
def test_no_secret_of_a_source_uri_reaches_anything_a_run_leaves(http_server, tmp_path):
    base, root = http_server
    masters = root / "redaction"
    masters.mkdir()
    for i in range(2):
        Image.fromarray(to_uint8(scene(32, 40, seed=i))).save(masters / f"scan-{i}.jpg")
    host = base.removeprefix("http://")
    rows = [
        ("with-userinfo", f"http://user:pass-SECRET-1@{host}/redaction/scan-0.jpg"),
        ("pre-signed", f"{base}/redaction/scan-1.jpg?X-Amz-Credential=AKIACRED5%2F2026&X-Amz-Signature=SIGSECRET2"),
        ("sas-missing", f"{base}/redaction/gone.jpg?sv=2022&sig=tokSECRET6"),  # fails: its message names the URL
        ("s3-userinfo", "s3://AKIASECRET3:s3SECRET4@archive/scan-0.jpg"),  # fails: botocore quotes the "bucket"
        # (before any request: its name is not a bucket's, so no network is needed)
    ]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([("item_id", "source_uri"), *rows])
    config = tmp_path / "pipeline.toml"
    config.write_text('stages = ["assess"]\n')
    out, prefect_home = tmp_path / "out", tmp_path / "prefect"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env |= {"PREFECT_HOME": str(prefect_home), "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    cli = [sys.executable, "-m", "patina.flows.cli"]
    done = subprocess.run(
        [*cli, "run", str(manifest), "-o", str(out), "-c", str(config), "--num-cpus", "2"],
        capture_output=True, text=True, env=env, timeout=400,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-3000:]  # partial: two restored, two failed
    premis = subprocess.run([*cli, "provenance", "export", str(out)], capture_output=True, text=True, env=env)
    iiif = subprocess.run(
        [*cli, "iiif", str(out), "--base-url", "https://example.org/r"], capture_output=True, text=True, env=env
    )
    plan = subprocess.run([*cli, "plan", str(manifest), "-o", str(out), "-c", str(config), "--json"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert premis.returncode == iiif.returncode == plan.returncode == 0, premis.stderr + iiif.stderr + plan.stderr

    table = read_provenance(str(out))
    reads = {r["item_id"]: r for r in table.to_pylist() if r["stage"] == "read"}
    assert reads["with-userinfo"]["status"] == reads["pre-signed"]["status"] == "ok"
    assert reads["s3-userinfo"]["status"] == reads["sas-missing"]["status"] == "failed"
    assert json.loads(reads["pre-signed"]["decisions"])["source_uri_redacted"] is True
    assert reads["with-userinfo"]["source_uri"] == f"http://{host}/redaction/scan-0.jpg"
    stored = json.dumps(table.to_pylist(), default=str)
    places = [("provenance", stored), ("terminal", done.stdout + done.stderr), ("premis", premis.stdout)]
    places += [("iiif stdout", iiif.stdout), ("plan", plan.stdout + plan.stderr)]
    places += [(str(p), data.decode("utf-8", "replace")) for p, data in _texts_under(out)]  # logs, report, IIIF
    prefect_files = _texts_under(prefect_home)
    assert any(p.suffix == ".db" for p, _ in prefect_files)
    places += [(str(p), data.decode("latin-1")) for p, data in prefect_files]
    assert any("_logs" in where for where, _ in places) and any("_reports" in where for where, _ in places)
    for where, text in places:
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {where}"
