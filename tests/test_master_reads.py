"""Masters are read as regular files, with a size cap and a stall timeout: one bad master fails alone.

A FIFO used to hang the whole run (its open blocks for ever); a 2 GB non-image was read whole.
"""

from __future__ import annotations

import csv
import io
import os
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from patina.actors.pipeline import run_pipeline
from patina.flows.config import parse_config
from patina.manifests.readers import read_manifest
from patina.models.codecs import DecodeError, ImageTooLarge, check_signature, decode_image
from tests.helpers import scene


def _jpeg(seed=0) -> bytes:
    sink = io.BytesIO()
    Image.fromarray(np.rint(scene(24, 32, seed) * 255).astype(np.uint8)).save(sink, format="JPEG")
    return sink.getvalue()


HEIC = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64


@pytest.mark.timeout(240)
def test_fifo_directory_oversize_stalled_and_non_image_masters_fail_alone(ray_local, http_server, tmp_path):
    base, _ = http_server
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(_jpeg())
    os.mkfifo(folder / "pipe.jpg")  # nobody ever writes: opening it would block for ever
    (folder / "folder.jpg").mkdir()
    with open(folder / "big.jpg", "wb") as handle:  # a JPEG's start in 120 MB, over max_bytes (sparse: no disk)
        handle.write(_jpeg(1))
        handle.truncate(120 * 2**20)
    with open(folder / "huge.bin", "wb") as handle:  # 80 MB that no format recognises
        handle.truncate(80 * 2**20)
    (folder / "phone.heic").write_bytes(HEIC)
    rows = [
        ("good", "good.jpg", "ok", ""),
        ("fifo", "pipe.jpg", "MasterRefused", "a FIFO (named pipe), not a regular file"),
        ("directory", "folder.jpg", "MasterRefused", "a directory, not a regular file"),
        ("oversize", "big.jpg", "MasterRefused", f"more than input.max_bytes = {100 * 2**20}"),
        ("non-image", "huge.bin", "DecodeError", "not a recognised image format"),
        ("heic", "phone.heic", "DecodeError", "convert the master to TIFF or PNG"),
        ("stalled", f"{base}/stall/scan.jpg", "MasterRefused", "stalled: nothing arrived for 2 s"),
    ]
    with open(folder / "m.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("item_id", "source_uri"), *[(i, s) for i, s, _, _ in rows]])
    limits = {"max_bytes": 100 * 2**20, "read_stall_s": 2}
    settings = parse_config({"stages": ["assess"], "input": limits}).run_settings("reads", str(tmp_path / "out"))
    started = time.monotonic()
    summary = run_pipeline(read_manifest(str(folder / "m.csv")), settings)
    assert time.monotonic() - started < 120  # no master holds up the run
    assert (summary.succeeded, summary.failed) == (1, len(rows) - 1)
    failures = {f.item_id: f for f in summary.failures}
    for item_id, _, error, message in rows[1:]:
        assert failures[item_id].error_type == error and message in failures[item_id].error_message, failures[item_id]
    assert (tmp_path / "out" / "good.jpg").exists()


def test_check_signature_refuses_what_is_no_image_before_reading_it():
    with pytest.raises(DecodeError, match="HEIC/HEIF"):
        check_signature(HEIC, len(HEIC))
    with pytest.raises(DecodeError, match="not read"):
        check_signature(b"\x7fELF" + b"\0" * 60, 100 * 2**20)
    check_signature(_jpeg()[:64], 100 * 2**20)  # a large JPEG passes on to be read
    check_signature(b"no signature at all", 1000)  # small: Pillow tries every format itself


def test_max_pixels_governs_pillows_decompression_bomb_limit():
    """A 196 MP header (over Pillow's own 179 MP refusal) is decoded under patina's 250 MP limit."""
    width = height = 14_000
    sink = io.BytesIO()
    Image.new("L", (width, 1)).save(sink, format="PNG")
    data = bytearray(sink.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR says 14000 x 14000 ...
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # ... with its checksum
    try:  # its pixel data is one short row: decoded as far as it goes, or a decode error, never "a bomb"
        assert decode_image(bytes(data), max_pixels=250_000_000).pixels.shape[:2] == (height, width)
    except DecodeError as exc:
        assert not isinstance(exc, ImageTooLarge) and "bomb" not in str(exc).lower(), exc
    with pytest.raises(ImageTooLarge, match="exceeds the limit of 100000000"):
        decode_image(bytes(data), max_pixels=100_000_000)
