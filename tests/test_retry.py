"""Transient storage errors are retried with backoff; permanent ones never (a fault-injecting HTTP server)."""

from __future__ import annotations

import errno
import functools
import http.server
import json
import threading
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from patina.actors.io_tasks import read_item
from patina.actors.item_state import ItemState
from patina.flows.config import parse_config
from patina.manifests.provenance import ProvenanceRecord
from patina.manifests.retry import RetryPolicy, is_transient, retrying


@pytest.fixture(scope="module")
def flaky_server(tmp_path_factory):
    """Serves one PNG at any path; ``/503/K/...`` answers 503 to the first K GETs of each path,
    ``/reset/K/...`` drops the connection on them, ``/404/...`` and ``/403/...`` always fail."""
    root = tmp_path_factory.mktemp("flaky")
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(root / "scan.png")
    body = (root / "scan.png").read_bytes()
    requests: Counter = Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests[self.path] += 1
            parts = self.path.strip("/").split("/")
            if parts[0] in ("404", "403"):
                self.send_error(int(parts[0]))
                return
            if parts[0] in ("503", "reset") and requests[self.path] <= int(parts[1]):
                if parts[0] == "reset":
                    self.connection.close()  # mid-request: the client sees the connection go
                    return
                self.send_error(503, "Slow Down")
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self):  # the source stamp (size, modification): not counted
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def _read(uri: str, attempts: int = 4) -> ProvenanceRecord:
    settings = parse_config({"storage": {"attempts": attempts, "backoff_s": 0.01}}).run_settings("r", "/tmp/out")
    row = {"item_id": "x", "source_uri": uri, "checksum": "", "resume_index": 0, "resume_uri": "", "descriptive": ""}
    (record,) = ItemState.from_json(read_item(row, settings)["state"]).records
    return record


@pytest.mark.parametrize("kind", ["503", "reset"])
def test_transient_errors_are_retried_and_the_attempts_recorded(flaky_server, kind):
    url, requests = flaky_server
    record = _read(f"{url}/{kind}/2/a.png")
    assert record.status == "ok", record.error_message
    assert requests[f"/{kind}/2/a.png"] == 3  # two failures, then the bytes
    attempts = json.loads(record.decisions)["attempts"]
    # ours: one per failure; aiohttp itself resends an idempotent GET once when a kept-alive connection drops
    assert attempts == 3 if kind == "503" else attempts in (2, 3)


def test_attempts_run_out_with_the_count_in_the_message(flaky_server):
    url, requests = flaky_server
    record = _read(f"{url}/503/9/b.png", attempts=3)
    assert record.status == "failed" and "(after 3 attempts)" in record.error_message
    assert requests["/503/9/b.png"] == 3


@pytest.mark.parametrize(("code", "message"), [("404", "source not found"), ("403", "permission denied")])
def test_permanent_errors_are_never_retried(flaky_server, code, message):
    url, requests = flaky_server
    record = _read(f"{url}/{code}/c.png")
    assert record.status == "failed" and message in record.error_message
    assert requests[f"/{code}/c.png"] == 1


def test_backoff_is_capped_exponential_with_jitter():
    policy = RetryPolicy(attempts=6, backoff_s=1.0, cap_s=5.0)
    delays = [[policy.delay(n) for n in range(1, 6)] for _ in range(200)]
    for n, bound in enumerate((1, 2, 4, 5, 5)):
        column = [d[n] for d in delays]
        assert bound / 2 <= min(column) < max(column) <= bound  # jittered within [bound/2, bound]
    slept = []
    calls = iter([ConnectionResetError(), OSError(errno.EBUSY, "SlowDown"), "done"])

    def call():
        value = next(calls)
        if isinstance(value, BaseException):
            raise value
        return value

    assert retrying(call, policy, "test", sleep=slept.append) == ("done", 3) and len(slept) == 2
    assert not is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_transient(FileNotFoundError()) and is_transient(TimeoutError())


@pytest.fixture
def flaky_s3(s3_endpoint):
    """A proxy in front of the loopback S3 server that answers ``503 SlowDown`` to the first K PUTs of
    each object whose key holds ``/flaky-K/``, and forwards everything else."""
    import http.client
    from urllib.parse import urlsplit

    upstream = urlsplit(s3_endpoint)
    puts: Counter = Counter()

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.command == "PUT" and "/flaky-" in self.path:
                puts[self.path.split("?")[0]] += 1
                failures = int(self.path.split("/flaky-")[1].split("/")[0])
                if puts[self.path.split("?")[0]] <= failures:
                    error = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            connection.request(self.command, self.path, body=body, headers={**headers, "Host": upstream.netloc})
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", puts
    server.shutdown()


@pytest.mark.parametrize("beyond", [2, 1000])
def test_writes_to_s3_retry_throttling_through_a_faulty_endpoint(flaky_s3, beyond):
    """503 SlowDown on PUT: botocore's retries are off here; s3fs retries SlowDown itself (``S3FileSystem.retries``
    tries per call), and patina's layer retries whole writes beyond that, recording its attempts."""
    import boto3
    from s3fs import S3FileSystem

    from patina.manifests.storage import atomic_write, read_bytes

    endpoint, puts = flaky_s3
    inner = S3FileSystem.retries
    failures = inner + beyond
    bucket = f"writes-{beyond}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    ).create_bucket(Bucket=bucket)
    options = {
        "key": "k", "secret": "s", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"total_max_attempts": 1}}, "skip_instance_cache": True,
    }  # fmt: skip
    uri = f"s3://{bucket}/out/flaky-{failures}/item.png"
    policy = RetryPolicy(attempts=4, backoff_s=0.01)
    if beyond < inner:
        _, attempts = retrying(lambda: atomic_write(uri, b"derivative", options), policy, f"write {uri}")
        assert attempts == 2 and read_bytes(uri, options) == b"derivative"
        assert puts[f"/{bucket}/out/flaky-{failures}/item.png"] == failures + 1
    else:
        with pytest.raises(OSError) as raised:
            retrying(lambda: atomic_write(uri, b"derivative", options), policy, f"write {uri}")
        assert is_transient(raised.value) and any("gave up after 4 attempts" in n for n in raised.value.__notes__)
        assert puts[f"/{bucket}/out/flaky-{failures}/item.png"] == 4 * inner
