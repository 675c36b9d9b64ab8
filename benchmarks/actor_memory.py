"""Peak resident memory of an actor per model: the figures behind each pool's Ray ``memory`` request.

    python benchmarks/actor_memory.py [--size 1536x1024] [--models ID ...]

Each model runs in a fresh process, as in an actor: import patina's actor code (torch and
Ray included), build the stage (weights loaded), run it twice on an aged photograph of
``--size`` (a tile's worth: larger scans run tile by tile), and report the process's peak RSS.
A process that builds no stage gives the baseline; a model's figure is its peak above the
baseline. Last, the default chain in one process (the shared CPU pool of a cluster without GPUs).
``models/registry.py`` records them as each spec's ``memory_mb`` (rounded up, with
headroom), and :func:`patina.actors.pipeline.pool_memory` sums them into a pool's request.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys
import numpy as np
import patina.actors.stage_actor  # noqa: F401 - what every actor imports (torch, Ray, the codecs)
from patina.models import synthetic as syn
from patina.models.registry import build_stage, default_params
from patina.models.stage import StageInput

model, height, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if model != "baseline":
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.4 * np.sin(x[..., None] / 37 + y[..., None] / 53 + np.array([0.0, 1.0, 2.0]))
    image = syn.scratches(syn.dust(syn.sepia(base.astype(np.float32)).image, 60, rng).image, 4, rng).image
    stages = [build_stage(m, default_params(m)) for m in model.split(",")]
    mask = (syn.scratches(np.zeros_like(image), 4, rng).mask > 0)
    for _ in range(2):
        for stage in stages:
            stage.process(StageInput(image=image, mask=mask))
print(json.dumps({"model": model, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(model: str, height: int, width: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(height), str(width)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    from patina.models.registry import DEFAULT_MODELS, DEFAULT_STAGES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1536x1024", help="WIDTHxHEIGHT of the test image")
    parser.add_argument("--models", nargs="*", default=sorted(set(DEFAULT_MODELS.values())))
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    baseline = measure("baseline", height, width)
    print(f"baseline (actor imports, no stage): {baseline:.0f} MB peak RSS")
    print(f"{'model':40s} {'peak MB':>8s} {'above baseline':>15s}")
    for model in args.models:
        peak = measure(model, height, width)
        print(f"{model:40s} {peak:8.0f} {peak - baseline:15.0f}")
    chain = [DEFAULT_MODELS[s] for s in DEFAULT_STAGES]
    peak = measure(",".join(chain), height, width)
    print(f"the default chain in one actor ({', '.join(chain)}):")
    print(f"  {peak:.0f} MB peak, {peak - baseline:.0f} above baseline")


if __name__ == "__main__":
    main()
