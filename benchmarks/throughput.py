"""Throughput, side by side in one run: naive loop vs patina's pipeline vs each step alone.

On N items made from the bundled sample collection (optionally upscaled to scan sizes):

(a) naive: one process, one image at a time through every step (fetch, decode, each stage,
    encode, write) -- the way Bringing-Old-Photos-Back-to-Life's ``run.py`` works;
(b) patina: ``run_pipeline`` on a local Ray instance (one actor pool per stage), end to end
    (actor start-up included) and in steady state (from the first finished item on);
(c) each step alone in one process at its best batch size (1, 4, 8): the slowest one is the
    bottleneck bound of a pipeline with a core per stage. On a machine with fewer cores than
    steps the stages share the CPUs, so the pipeline is also bounded by cores / total CPU time
    per item (process CPU time, all threads: torch and OpenCV use several cores alone); the
    tighter of the two is the *achievable bound* it is compared with. The naive loop's CPU time
    over its wall time shows how many cores it already keeps busy by itself.

Run: ``python benchmarks/throughput.py [--items 120] [--scale 1.0] [--num-cpus N] [--config pipeline.toml]``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "examples" / "collection"


def make_items(folder: Path, count: int, scale: float) -> Path:
    """``count`` items cycling over the sample scans (resized by ``scale``), with a manifest."""
    import cv2

    sources = sorted(SAMPLES.glob("*.jpg"))
    scaled = []
    for path in sources:
        target = folder / path.name
        if scale == 1.0:
            shutil.copy(path, target)
        else:
            image = cv2.imread(str(path))
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            cv2.imwrite(
                str(target), cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 92]
            )
        scaled.append(target.name)
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "source_uri"])
        for i in range(count):
            writer.writerow([f"item-{i:05d}", scaled[i % len(scaled)]])
    return manifest


def naive(items, settings, out: Path) -> tuple[float, float]:
    """One image at a time through every step, in this process; returns (wall, CPU) seconds."""
    from patina.manifests.storage import atomic_write, read_bytes
    from patina.models.codecs import decode_image, encode_image
    from patina.models.image import to_uint8, to_working
    from patina.models.registry import build_stage
    from patina.models.stage import StageInput

    stages = [build_stage(s.model_id, s.params) for s in settings.stages]  # models loaded once
    started, cpu = time.perf_counter(), time.process_time()
    for item in items:
        decoded = decode_image(read_bytes(item.source_uri), settings.max_pixels)
        current = StageInput(to_working(decoded.pixels))
        for stage in stages:
            result = stage.process(current)
            mask = result.mask if result.mask is not None else current.mask
            current = StageInput(result.image, mask, {**current.decisions, stage.stage: dict(result.decisions)})
        atomic_write(str(out / f"{item.item_id}.jpg"), encode_image(to_uint8(current.image), "jpeg"))
    return time.perf_counter() - started, time.process_time() - cpu


def steps_alone(items, settings, out: Path) -> dict[str, tuple[float, int, float]]:
    """Best items/s of each step alone, in this process, over batch sizes 1, 4, 8, with its batch size
    and the CPU seconds (all threads) per item at that batch size."""
    from patina.manifests.storage import atomic_write, read_bytes
    from patina.models.codecs import decode_image, encode_image
    from patina.models.image import to_uint8, to_working
    from patina.models.registry import build_stage
    from patina.models.stage import StageInput

    rates: dict[str, tuple[float, int, float]] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    images = [to_working(decode_image(read_bytes(i.source_uri), settings.max_pixels).pixels) for i in items]
    rates["read"] = (len(items) / (time.perf_counter() - t0), 1, (time.process_time() - c0) / len(items))
    inputs = [StageInput(image) for image in images]
    for conf in settings.stages:
        stage = build_stage(conf.model_id, conf.params)
        best, outputs = (0.0, 1, 0.0), None
        for batch in (1, 4, 8):
            t0, c0 = time.perf_counter(), time.process_time()
            results = []
            for k in range(0, len(inputs), batch):
                results += stage.process_batch(inputs[k : k + batch])
            rate = len(inputs) / (time.perf_counter() - t0)
            best, outputs = max(best, (rate, batch, (time.process_time() - c0) / len(inputs))), results
        rates[conf.stage] = best
        inputs = [
            StageInput(
                r.image, r.mask if r.mask is not None else i.mask, {**i.decisions, conf.stage: dict(r.decisions)}
            )
            for r, i in zip(outputs, inputs, strict=True)
        ]
    t0, c0 = time.perf_counter(), time.process_time()
    for k, item in enumerate(inputs):
        atomic_write(str(out / f"alone-{k}.jpg"), encode_image(to_uint8(item.image), "jpeg"))
    rates["write"] = (len(inputs) / (time.perf_counter() - t0), 1, (time.process_time() - c0) / len(inputs))
    return rates


def pipeline(items, settings) -> tuple[float, float]:
    """``run_pipeline`` on the running Ray; returns (seconds end to end, steady-state items/s)."""
    from patina.actors.pipeline import run_pipeline

    finished: list[float] = []
    started = time.perf_counter()
    summary = run_pipeline(items, settings, progress=lambda done, total, failed: finished.append(time.perf_counter()))
    seconds = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"pipeline failed on {summary.failed} items: {summary.failures[:3]}")
    done = finished[1:]  # the first call is the 0/N start
    steady = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else float("nan")
    return seconds, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="resize the samples (1.0: as bundled, ~512 px; 3.0: ~1500 px)"
    )
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--config", help="pipeline.toml for the pipeline run (default: the defaults)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from patina.flows.config import load_config
    from patina.manifests.readers import read_manifest

    with tempfile.TemporaryDirectory(prefix="patina-throughput-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "in").mkdir()
        items = read_manifest(str(make_items(tmp_path / "in", args.items, args.scale)))
        config = load_config(args.config)
        shape = __import__("cv2").imread(items[0].source_uri).shape
        print(f"{len(items)} items (e.g. {shape[1]}x{shape[0]}), {args.num_cpus} CPUs, stages {config.stages}")
        for name in ("naive", "alone", "pipeline"):
            (tmp_path / name).mkdir()
        naive_s, naive_cpu = naive(items, config.run_settings("naive", str(tmp_path / "naive")), tmp_path / "naive")
        alone = steps_alone(items, config.run_settings("alone", str(tmp_path / "alone")), tmp_path / "alone")
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        try:
            seconds, steady = pipeline(items, config.run_settings("pipeline", str(tmp_path / "pipeline")))
        finally:
            ray.shutdown()
    naive_rate, pipe_rate = len(items) / naive_s, len(items) / seconds
    bottleneck = min(alone, key=lambda k: alone[k][0])
    per_item = sum(cpu for _, _, cpu in alone.values())
    cpu_bound = args.num_cpus / per_item
    achievable = min(alone[bottleneck][0], cpu_bound)
    print(f"{'step alone':14} {'items/s':>8} {'best batch':>10} {'CPU s/item':>10}")
    for name, (rate, batch, cpu) in alone.items():
        print(f"{name:14} {rate:8.1f} {batch:10d} {cpu:10.3f}")
    print(f"(a) naive loop            {naive_rate:8.2f} items/s, keeping {naive_cpu / naive_s:.2f} cores busy")
    print(f"(b) patina pipeline       {pipe_rate:8.2f} items/s end to end, {steady:.2f} items/s steady state")
    print(
        f"(c) bottleneck step alone {alone[bottleneck][0]:8.2f} items/s ({bottleneck}); "
        f"CPU bound {cpu_bound:.2f} items/s ({args.num_cpus} CPUs / {per_item * 1000:.0f} ms of CPU time per item)"
    )
    print(f"pipeline/naive: {pipe_rate / naive_rate:.2f} end to end, {steady / naive_rate:.2f} steady")
    slowest = alone[bottleneck][0]
    print(f"pipeline/bottleneck: {pipe_rate / slowest:.2f} end to end, {steady / slowest:.2f} steady")
    print(f"pipeline/achievable bound: {pipe_rate / achievable:.2f} end to end, {steady / achievable:.2f} steady")


if __name__ == "__main__":
    main()
