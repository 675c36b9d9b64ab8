"""Shared fixtures: a real local Ray instance and a real (ephemeral) Prefect server.

Environment is set before Prefect or Ray is imported: a private PREFECT_HOME, no
PREFECT_API_URL (so nothing reaches a user's server), and the repository root on
PYTHONPATH so Ray workers can import the test plugin models.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from patina.flows.environment import apply_defaults

ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("RAY_ADDRESS", None)
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="patina-prefect-")
apply_defaults()
if importlib.util.find_spec("yuface") is None:  # Python 3.12+: no yuface wheel
    # the default backend there, OpenCV's, downloads YuNet's ONNX: the tests run the detector that ships in a
    # package instead (dlib's, no network); OpenCV's own path is tested with an ONNX the tests make
    os.environ.setdefault("PATINA_FACE_DETECTOR", "dlib")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance shared by the session (2 CPUs, no dashboard)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect API server on loopback with a throw-away database."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def make_collection(folder: Path, count: int = 4, bad: bool = True) -> Path:
    """Tiny aged scans + manifest.csv; with ``bad``: a missing, a corrupt and a checksum-mismatched item."""
    from patina.models import synthetic as syn
    from patina.models.image import to_uint8
    from tests.helpers import scene

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        rng = np.random.default_rng(i)
        image = scene(40 + 4 * i, 48, seed=i)
        image = syn.dust(syn.sepia(image).image if i % 2 else image, 4, rng).image
        name, fmt = (f"scan-{i}.png", "PNG") if i % 2 else (f"scan-{i}.jpg", "JPEG")
        Image.fromarray(to_uint8(image)).save(folder / name, format=fmt)
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        rows.append({"item_id": f"item/{i}", "source_uri": name, "checksum": f"sha256:{digest}"})
    if bad:
        (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole JPEG")
        rows.append({"item_id": "missing", "source_uri": "gone.png", "checksum": ""})
        rows.append({"item_id": "corrupt", "source_uri": "corrupt.jpg", "checksum": ""})
        rows.append({"item_id": "tampered", "source_uri": "scan-0.jpg", "checksum": "sha256:" + "0" * 64})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item_id", "source_uri", "checksum"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture
def collection(tmp_path) -> Path:
    return make_collection(tmp_path / "collection")


@pytest.fixture(scope="session")
def http_server(tmp_path_factory):
    """A real HTTP server on loopback serving a folder; paths under /forbidden/ answer 403, and under /stall/
    send their headers and a JPEG's first bytes, then nothing for a minute (a stalled read)."""
    import functools
    import http.server
    import threading

    root = tmp_path_factory.mktemp("http-root")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/forbidden/"):
                self.send_error(403, "Forbidden")
                return
            if self.path.startswith("/stall/"):
                import time

                self.send_response(200)
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                self.wfile.write(b"\xff\xd8\xff\xe0" + b"\0" * 100)
                self.wfile.flush()
                time.sleep(60)
                return
            super().do_GET()

        def do_HEAD(self):
            if self.path.startswith("/forbidden/"):
                self.send_error(403, "Forbidden")
                return
            super().do_HEAD()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


@pytest.fixture
def s3_endpoint():
    """A real S3 HTTP endpoint on loopback (moto's server), empty: moto keeps its buckets in the process,
    so without a reset one test would see another's objects (the order of tests would matter)."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")).close()
    yield f"http://{host}:{port}"
    server.stop()
