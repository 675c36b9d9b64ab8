"""Images/s of patina's own network stages alone, per device and precision, side by side in one run.

    python benchmarks/network_stages.py [--size 1536x1024] [--images 16] [--devices cpu,cuda] [--tile N]

Each stage (the damage U-Net, the inpainting U-Net on that mask, the colorizing U-Net) runs
over the same aged photographs (grayscale, sepia, dust, scratches) on each device; on CUDA
also in bfloat16, with the largest output difference against float32. While CUDA runs,
a sampler reads the GPU's utilization (NVML) every 50 ms. Needs no Ray and no codecs: this
is the network half of ``benchmarks/throughput.py``'s "each stage alone" for GPU machines.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import threading
import time

import numpy as np

from patina.models import synthetic as syn
from patina.models.registry import DEFAULT_MODELS, build_stage, default_params, entry
from patina.models.stage import StageInput

STAGES = ("detect_damage", "inpaint", "colorize")


def aged(count: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    images = []
    for _ in range(count):
        phase = rng.uniform(0, 6, 3)
        base = 0.5 + 0.4 * np.sin(x[..., None] / rng.uniform(20, 90) + y[..., None] / rng.uniform(20, 90) + phase)
        image = syn.sepia(base.astype(np.float32)).image
        image = syn.scratches(syn.dust(image, 60, rng).image, 4, rng).image
        images.append(syn.grain(image, 0.02, rng).image)
    return images


class Utilization:
    """Mean GPU utilization (%) while the block runs, sampled through NVML."""

    def __enter__(self) -> Utilization:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.samples: list[int] = []
        self.running = True

        def sample() -> None:
            while self.running:
                self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                time.sleep(0.05)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples)) if self.samples else float("nan")


def run(
    stage_name: str, device: str, precision: str, images: list[np.ndarray], masks: list[np.ndarray], tile: int | None
) -> tuple[float, list[np.ndarray]]:
    import torch

    model_id = DEFAULT_MODELS[stage_name]
    params = default_params(model_id)
    fields = {f.name for f in dataclasses.fields(params)}
    if "precision" in fields:
        params = dataclasses.replace(params, precision=precision)
    if tile and device.startswith("cuda"):
        params = dataclasses.replace(params, tile=tile)
    os.environ["PATINA_DEVICE"] = device  # where the stage loads its network
    stage = build_stage(model_id, params)
    masks = masks if stage_name == "inpaint" else [None] * len(images)
    decisions = {"assess": {"kind": "sepia"}}
    stage.process(StageInput(images[0], mask=masks[0], decisions=decisions))  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    outputs = [stage.process(StageInput(im, mask=m, decisions=decisions)) for im, m in zip(images, masks, strict=True)]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    arrays = [o.mask.astype(np.float32) if stage_name == "detect_damage" else o.image for o in outputs]
    return len(images) / seconds, arrays


def damage_masks(images: list[np.ndarray]) -> list[np.ndarray]:
    """The masks the default detector finds: what the inpainting stage is timed on."""
    detector = build_stage(DEFAULT_MODELS["detect_damage"], default_params(DEFAULT_MODELS["detect_damage"]))
    return [detector.process(StageInput(image)).mask for image in images]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1536x1024")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--tile", type=int, help="network tile side on CUDA (default: each stage's own)")
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    images = aged(args.images, height, width)
    masks = damage_masks(images)
    print(f"{args.images} images {width}x{height}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(
        f"{'stage':14} {'model':24} {'device':6} {'precision':9} {'images/s':>9} {'GPU util %':>10} {'max |diff|':>10}"
    )
    for stage_name in STAGES:
        model_id = DEFAULT_MODELS[stage_name]
        reference = None
        for device in args.devices.split(","):
            for precision in ("fp32", "bf16") if device.startswith("cuda") else ("fp32",):
                if precision == "bf16" and stage_name == "detect_damage":
                    continue  # the detector's stage runs float32 only
                util = float("nan")
                if device.startswith("cuda"):
                    with Utilization() as meter:
                        rate, arrays = run(stage_name, device, precision, images, masks, args.tile)
                    util = meter.mean
                else:
                    rate, arrays = run(stage_name, device, precision, images, masks, args.tile)
                diff = float("nan")
                if reference is None:
                    reference = arrays
                else:
                    diff = max(float(np.abs(a - b).max()) for a, b in zip(arrays, reference, strict=True))
                print(
                    f"{stage_name:14} {entry(model_id).spec.id:24} {device:6} {precision:9} {rate:9.2f} "
                    f"{util:10.0f} {diff:10.4f}"
                )


if __name__ == "__main__":
    main()
