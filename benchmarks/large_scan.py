"""Peak memory of one large scan through the pipeline's steps: tiled vs whole-image stages.

Makes a synthetic 16-bit RGB TIFF (default 12000 x 9000, sepia-toned, with dust and grain),
then, each in a fresh subprocess so that peak RSS is its own, runs exactly what the Ray
workers run for one item -- ``read_item``, one ``StageActor`` per default stage, ``write_item``
-- in one process (the worst case: all steps share a worker):

* ``io-only``: read + write, no stages (the floor: masters and derivatives must be held);
* ``tiled``: the default policy (images above 16 MP run tile by tile, models/tiling.py);
* ``whole``: tiling switched off (``large_images.min_pixels`` above the image size).

Prints peak RSS, the number of float32 whole-image copies that peak amounts to, wall time,
and the tiled/whole ratio. Run: ``python benchmarks/large_scan.py [--width W --height H]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_scan(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A smooth sepia scene at 16 bits with dust specks and grain, built band by band."""
    import cv2
    import tifffile

    rng = np.random.default_rng(seed)
    small = rng.uniform(0.2, 0.8, (height // 200 + 2, width // 200 + 2)).astype(np.float32)
    luma = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    tone = np.array([1.0, 0.86, 0.66], np.float32)
    out = np.empty((height, width, 3), np.uint16)
    band = 1000
    for top in range(0, height, band):
        rows = luma[top : top + band]
        rows = rows + rng.normal(0, 0.01, rows.shape).astype(np.float32)
        out[top : top + band] = np.rint(np.clip(rows[..., None] * tone, 0, 1) * 65535).astype(np.uint16)
    for _ in range(width * height // 200_000):  # dust: about 540 specks on 108 MP
        y, x, r = rng.integers(0, height), rng.integers(0, width), int(rng.integers(1, 4))
        cv2.circle(out, (int(x), int(y)), r, (62000, 62000, 62000) if rng.random() < 0.5 else (3000, 3000, 3000), -1)
    tifffile.imwrite(path, out, photometric="rgb", compression="zlib", resolution=(1200, 1200))


def measure(mode: str, scan: Path, out_dir: Path) -> dict:
    """Run one item through read -> stages -> write in this process; report peak RSS and time."""
    from patina.actors.io_tasks import read_item, write_item
    from patina.actors.stage_actor import StageActor
    from patina.flows.config import parse_config

    data: dict = {"large_images": {"min_pixels": 10**12}} if mode == "whole" else {}
    if mode == "io-only":
        data["stages"] = []
    config = parse_config(data)
    settings = config.run_settings(f"bench-{mode}", str(out_dir))
    started = time.perf_counter()
    row = read_item({"item_id": "scan", "source_uri": str(scan), "checksum": ""}, settings)
    state = json.loads(row["state"])
    if state["failed_stage"]:
        raise SystemExit(f"read failed: {state['records'][-1]['error_message']}")
    for index, stage in enumerate(settings.stages, start=1):
        actor = StageActor(stage, index, settings)
        batch = {k: np.array([v], dtype=object) for k, v in row.items() if k != "image"}
        batch["image"] = row["image"][None]  # a view, as a one-row numpy batch
        result = actor(batch)
        row = {k: result[k][0] for k in result}
        state = json.loads(row["state"])
        if state["failed_stage"]:
            raise SystemExit(f"{stage.stage} failed: {state['records'][-1]['error_message']}")
    done = write_item(row, settings)
    seconds = time.perf_counter() - started
    state = json.loads(done["state"])
    if state["failed_stage"]:
        raise SystemExit(f"write failed: {state['records'][-1]['error_message']}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tiled = sum("large_image" in r["decisions"] for r in state["records"])
    return {"mode": mode, "peak_mib": peak_kib / 1024, "seconds": seconds, "tiled_stages": tiled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=9000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--scan", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.scan), Path(args.out))))
        return
    with tempfile.TemporaryDirectory(prefix="patina-large-") as tmp:
        scan = Path(tmp) / "scan.tif"
        t0 = time.perf_counter()
        make_scan(scan, args.width, args.height)
        print(
            f"scan: {args.width}x{args.height} 16-bit RGB TIFF, {scan.stat().st_size / 2**20:.0f} MiB on disk, "
            f"made in {time.perf_counter() - t0:.0f} s"
        )
        transport_mib = args.width * args.height * 3 * 2 / 2**20
        float_mib = transport_mib * 2
        print(f"one uint16 copy = {transport_mib:.0f} MiB, one float32 copy = {float_mib:.0f} MiB")
        results = []
        for mode in ("io-only", "tiled", "whole"):
            done = subprocess.run(
                [sys.executable, __file__, "--measure", mode, "--scan", str(scan), "--out", str(Path(tmp) / mode)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"{mode}: failed\n{done.stderr[-2000:]}")
                continue
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{'mode':8} {'peak RSS MiB':>13} {'= float32 copies':>17} {'seconds':>8} {'tiled stages':>13}")
        for r in results:
            copies = r["peak_mib"] / float_mib
            print(f"{r['mode']:8} {r['peak_mib']:13.0f} {copies:17.1f} {r['seconds']:8.1f} {r['tiled_stages']:13d}")
        by = {r["mode"]: r for r in results}
        if "tiled" in by and "whole" in by:
            print(
                f"tiled/whole peak memory: {by['tiled']['peak_mib'] / by['whole']['peak_mib']:.2f}; "
                f"time: {by['tiled']['seconds'] / by['whole']['seconds']:.2f}"
            )


if __name__ == "__main__":
    main()
