"""A full disk under the output, on a real small filesystem (a tmpfs this test mounts; needs root).

A run that fills the disk fails the items it could not write, by name and cause, leaves no
partial file, keeps every committed provenance row readable and exits 3; a rerun after space is
freed completes them. A disk already full, or mounted read-only, fails the run before any item,
with exit status 4.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from patina.manifests.provenance import read_provenance
from tests.conftest import make_collection
from tests.helpers import slow_run_config
from tests.test_cli import _patina

NO_SPACE = "No space left on device"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "out"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def noisy_collection(folder: Path, count: int) -> Path:
    """PNG masters of noise (about 480 KB each, as their derivatives): a few fill 2 MB."""
    folder.mkdir()
    rows = ["item_id,source_uri"]
    for i in range(count):
        pixels = (np.random.default_rng(i).random((400, 400, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"n{i}.png")
        rows.append(f"n{i},n{i}.png")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    (folder / "pipeline.toml").write_text('stages = ["assess"]\n')
    return folder


@pytest.mark.slow
def test_a_run_that_fills_the_disk_fails_those_items_cleanly_and_a_rerun_completes_them(small_disk, tmp_path):
    c = noisy_collection(tmp_path / "c", 8)
    args = ("run", str(c / "manifest.csv"), "--output", str(small_disk), "--config", str(c / "pipeline.toml"))
    first = _patina(*args, "--num-cpus", "2")
    assert first.returncode == 3, first.stderr  # partial
    assert NO_SPACE in first.stdout and "of 8 items restored" in first.stdout

    assert not list(small_disk.rglob(".tmp-*"))  # no temporary left behind
    rows = read_provenance(str(small_disk)).to_pylist()  # every committed row reads
    writes = {r["item_id"]: r for r in rows if r["stage"] == "write"}
    assert sorted(writes) == [f"n{i}" for i in range(8)]
    failed = [i for i, r in writes.items() if r["status"] == "failed"]
    assert failed and all(writes[i]["error_type"] == "OSError" for i in failed)
    assert all(NO_SPACE in writes[i]["error_message"] for i in failed)
    assert all(not (small_disk / f"{i}.png").exists() for i in failed)  # no partial derivative
    for item_id, row in writes.items():
        if row["status"] == "ok":  # each derivative there is whole: its bytes are the ones recorded
            assert hashlib.sha256((small_disk / f"{item_id}.png").read_bytes()).hexdigest() == row["output_sha256"]

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)  # space freed
    second = _patina(*args, "--num-cpus", "2")
    assert second.returncode == 0, second.stderr
    assert f"plan: {len(failed)} to run (0 new, {len(failed)} failed before" in second.stderr
    assert all((small_disk / f"{i}.png").exists() for i in failed)


@pytest.mark.slow
def test_a_disk_already_full_fails_the_run_before_any_item(small_disk, tmp_path):
    c = noisy_collection(tmp_path / "c", 2)
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(OSError, match=NO_SPACE):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    done = _patina("run", str(c / "manifest.csv"), "--output", str(small_disk), "--config", str(c / "pipeline.toml"))
    assert done.returncode == 4, done.stderr
    assert f"cannot write the run's log: {NO_SPACE}; no item was attempted" in done.stderr
    assert sorted(p.name for p in small_disk.rglob("*")) == ["_logs", "filler"]  # no lock, no empty log


@pytest.mark.slow
def test_a_read_only_output_fails_the_run_before_any_item(small_disk, tmp_path):
    c = noisy_collection(tmp_path / "c", 2)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    done = _patina("run", str(c / "manifest.csv"), "--output", str(small_disk), "--config", str(c / "pipeline.toml"))
    assert done.returncode == 4, done.stderr
    assert "cannot write the run's log: Read-only file system; no item was attempted" in done.stderr


@pytest.mark.slow
def test_an_output_that_becomes_unwritable_mid_run_exits_4_naming_the_path(small_disk, tmp_path):
    manifest = make_collection(tmp_path / "c", count=8, bad=False)
    config = tmp_path / "pipeline.toml"
    config.write_text(slow_run_config(1.0))
    command = [sys.executable, "-m", "patina.flows.cli", "run", str(manifest), "-o", str(small_disk), "-c", str(config)]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    run = subprocess.Popen([*command, "--num-cpus", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env)  # fmt: skip
    deadline = time.monotonic() + 240
    while not list(small_disk.glob("item*")):  # the first derivative is written
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()[-3000:]
        time.sleep(0.1)
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)  # another writer takes every byte left
    with pytest.raises(OSError, match=NO_SPACE):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 4, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"patina: {small_disk}/_provenance/") and "cannot write the provenance part" in last
    assert f"{NO_SPACE}; the items committed so far are kept" in last
    assert not list(small_disk.rglob(".tmp-*"))  # nothing half-written
    read_provenance(str(small_disk))  # what was committed before still reads
