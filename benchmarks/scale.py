"""Nightly runs at archive scale: the machinery's cost per item, the no-op rerun, a year of history.

    python benchmarks/scale.py [--items 100000] [--history 365] [--work /tmp/patina-scale]

N manifest rows (ids sharing a few tiny PNG masters) go through the cheapest chain
(``stages = ["assess"]``), as a user runs it (``patina run``, a subprocess: local Ray, Prefect's
temporary server). Printed per phase: wall seconds, items/s, the driver's peak RSS (``VmHWM`` of
the ``patina`` process, polled), CPU seconds of the driver and every process it waited for
(Ray's workers, Prefect's server), and the provenance's size:

1. first run (every item new);
2. no-op rerun (nothing to do) and ``patina plan`` alone;
3. a rerun after the assess stage's params change (every item reruns from assess);
4. with ``--history D``: D nightly runs of history are synthesized under the output (each
   rerunning 1% of the items, plus a full reprocessing every 90 nights, as model upgrades do),
   then ``patina plan`` and the no-op rerun are timed again;
5. with ``--plan-items M``: a manifest of M items and a first run's provenance for them are
   synthesized from the first run's rows (same masters, so everything is unchanged), and
   ``patina plan`` and the no-op rerun are timed over M items: planning's memory without Ray's.

The machinery's CPU per item is (CPU of the first run - CPU of the no-op rerun) / N: reading,
decoding, a one-pixel-cheap stage, encoding, writing and provenance, without start-up costs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from patina.actors.settings import RunSettings

MASTERS = 16
PART_ROWS = RunSettings.provenance_flush_rows  # a run commits its provenance in parts of at most this many rows


def make_collection(folder: Path, items: int) -> Path:
    """``items`` manifest rows over MASTERS tiny PNG masters (16x16)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(MASTERS):
        pixels = (np.random.default_rng(i).random((16, 16, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"m{i}.png")
    manifest = folder / "manifest.csv"
    with open(manifest, "w") as handle:
        handle.write("item_id,source_uri\n")
        handle.writelines(f"item/{n:07d},m{n % MASTERS}.png\n" for n in range(items))
    (folder / "scale.toml").write_text('stages = ["assess"]\n')
    (folder / "changed.toml").write_text('stages = ["assess"]\n[stage.assess]\nparams = { gray_chroma = 4.5 }\n')
    return manifest


def _peak_rss_mb(pid: int, seen: dict[str, float], done: threading.Event) -> None:
    """Poll the process's peak RSS (VmHWM) and its largest private part (RssAnon: not shared pages).

    The driver maps Ray's object store (shared memory); pages of it the driver has read count in
    its RSS though they are the store's, so the private part is reported beside the total.
    """
    while not done.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in ("VmHWM", "RssAnon"):
                    seen[name] = max(seen.get(name, 0.0), int(value.split()[0]) / 1024)
        except OSError:
            return
        time.sleep(0.2)


def patina(*args: str) -> dict[str, float]:
    """Run ``patina ARGS``; wall seconds, the driver's peak RSS (MB) and CPU seconds of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "patina.flows.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    seen: dict[str, float] = {}
    done = threading.Event()
    watcher = threading.Thread(target=_peak_rss_mb, args=(process.pid, seen, done), daemon=True)
    watcher.start()
    _, err = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode not in (0, 3):
        raise SystemExit(f"patina {' '.join(args)} exited {process.returncode}:\n{err.decode()[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "rss_mb": seen.get("VmHWM", 0.0), "private_mb": seen.get("RssAnon", 0.0), "cpu_s": cpu}


def provenance_size(output: Path) -> tuple[int, int]:
    files = list((output / "_provenance").rglob("*.parquet"))
    return len(files), sum(f.stat().st_size for f in files)


def synthesize_history(output: Path, nights: int, seed: int = 0) -> int:
    """``nights`` older runs under ``output``'s provenance, copied from its first run's rows.

    Every night reruns 1% of the items; every 90th night reprocesses all of them. Their run ids
    sort before the real runs', so the latest attempt of each item (and so the plan) is unchanged.
    """
    (first,) = sorted((output / "_provenance").iterdir())[:1]
    table = pq.read_table(first)
    items = np.unique(table["item_id"].to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(seed)
    rows_written = 0
    for night in range(nights):
        day = datetime(2025, 1, 1, 2, tzinfo=UTC) + timedelta(days=night)
        run_id = f"{day:%Y%m%dT%H%M%SZ}-{night:06x}"
        chosen = items if night % 90 == 0 else rng.choice(items, max(1, len(items) // 100), replace=False)
        part = table.filter(pc.is_in(table["item_id"], value_set=pa.array(chosen)))
        part = part.set_column(part.schema.get_field_index("run_id"), "run_id", pa.array([run_id] * part.num_rows))
        folder = output / "_provenance" / run_id
        folder.mkdir()
        for number, start in enumerate(range(0, part.num_rows, PART_ROWS)):  # parts as a run commits them
            pq.write_table(part.slice(start, PART_ROWS), folder / f"part-{number:05d}.parquet", compression="zstd")
        rows_written += part.num_rows
    return rows_written


def synthesize_collection(collection: Path, output: Path, items: int, target: Path) -> Path:
    """A manifest of ``items`` rows over the same masters, and a first run's provenance for them under ``target``:
    the real first run's rows under ``output`` copied with renumbered ids (same masters, so the same
    chain keys and stamps: everything is unchanged), each derivative a hard link to its template's.
    Returns the manifest."""
    (first,) = sorted((output / "_provenance").iterdir())[:1]
    template = pq.read_table(first)
    size = len(np.unique(template["item_id"].to_numpy(zero_copy_only=False)))
    number = pc.cast(pc.utf8_slice_codeunits(template["item_id"], 5), pa.int64())
    folder = target / "_provenance" / "20250101T000000Z-000000"
    folder.mkdir(parents=True)
    parts = 0
    for copy in range(-(-items // size)):
        renumbered = pc.add(number, copy * size)
        table = template.filter(pc.less(renumbered, items))
        ids = pc.utf8_lpad(pc.cast(pc.filter(renumbered, pc.less(renumbered, items)), pa.string()), 7, "0")
        table = table.set_column(
            table.schema.get_field_index("item_id"), "item_id", pc.binary_join_element_wise("item/", ids, "")
        )
        for start in range(0, table.num_rows, PART_ROWS):
            pq.write_table(table.slice(start, PART_ROWS), folder / f"part-{parts:05d}.parquet", compression="zstd")
            parts += 1
    # Each derivative as the template's write row recorded it (the plan checks its size; later runs may
    # have rewritten the template's own file): one file of that size per template item, hard-linked.
    writes = template.filter(pc.equal(template["stage"], "write")).to_pylist()
    sizes = {int(r["item_id"][5:]): json.loads(r["decisions"])["bytes"] for r in writes}
    shapes = target / "_derivative-sizes"
    shapes.mkdir()
    for number_, nbytes in sizes.items():
        (shapes / str(number_)).write_bytes(b"\0" * nbytes)
    for n in range(items):
        os.link(shapes / str(n % size), target / f"item%2F{n:07d}.png")
    manifest = collection / f"manifest-{items}.csv"
    with open(manifest, "w") as handle:
        handle.write("item_id,source_uri\n")
        handle.writelines(f"item/{n:07d},m{n % MASTERS}.png\n" for n in range(items))
    return manifest


def row(name: str, figures: dict[str, float], items: int) -> None:
    rate = items / figures["wall_s"] if items else 0.0
    print(
        f"{name:34} {figures['wall_s']:8.1f} s {rate:9.0f} items/s  driver peak RSS {figures['rss_mb']:6.0f} MB"
        f" (private {figures['private_mb']:5.0f} MB)  CPU {figures['cpu_s']:8.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=365, help="nightly runs of history to synthesize (0: none)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/patina-scale"))
    parser.add_argument(
        "--plan-items",
        type=int,
        default=0,
        help="then time planning and the no-op rerun over this many items (history synthesized from the first run)",
    )
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    manifest = make_collection(args.work / "collection", args.items)
    output = args.work / "out"
    config, changed = str(manifest.parent / "scale.toml"), str(manifest.parent / "changed.toml")
    run = ("run", str(manifest), "--output", str(output))
    print(f"{args.items} items, stages = ['assess'], {os.cpu_count()} CPUs")

    first = patina(*run, "--config", config)
    row("first run", first, args.items)
    noop = patina(*run, "--config", config)
    row("no-op rerun", noop, 0)
    plan = patina("plan", str(manifest), "--output", str(output), "--config", config)
    row("patina plan", plan, 0)
    files, size = provenance_size(output)
    print(f"provenance: {files} files, {size / 1e6:.1f} MB ({size / args.items:.0f} bytes/item)")
    per_item_ms = (first["cpu_s"] - noop["cpu_s"]) / args.items * 1000
    print(f"machinery CPU per item: {per_item_ms:.2f} ms (first run less the no-op rerun, over {args.items} items)")
    rerun = patina(*run, "--config", changed)
    row("rerun after a params change", rerun, args.items)

    if args.history:
        rows = synthesize_history(output, args.history)
        files, size = provenance_size(output)
        print(f"history: {args.history} nights, {rows} rows; provenance {files} files, {size / 1e6:.1f} MB")
        planned = patina("plan", str(manifest), "--output", str(output), "--config", changed)
        row(f"patina plan after {args.history} nights", planned, 0)
        row(f"no-op rerun after {args.history} nights", patina(*run, "--config", changed), 0)

    if args.plan_items:
        target = args.work / f"out-{args.plan_items}"
        big = str(synthesize_collection(manifest.parent, output, args.plan_items, target))
        print(f"{args.plan_items} items: manifest and a first run's provenance synthesized")
        row(
            f"patina plan, {args.plan_items} items", patina("plan", big, "--output", str(target), "--config", config), 0
        )
        run_big = ("run", big, "--output", str(target), "--config", config)
        row(f"no-op rerun, {args.plan_items} items", patina(*run_big), 0)


if __name__ == "__main__":
    main()
