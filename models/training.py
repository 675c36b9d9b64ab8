"""Training patina's own damage detector on synthetic damage over clean photographs.

``patina train detect --data DIR --out DIR`` calls :func:`train_detector`: a small U-Net
(:mod:`patina.models.unet`) learns the exact masks that :mod:`patina.models.synthetic` draws
over random crops of the clean images in DIR. Seeds make a run deterministic on one device;
a checkpoint every ``checkpoint_every`` steps makes it resumable; the result is written as
``model.safetensors`` (configuration in its metadata), a model card (``model-card.md`` and
``.json``: data and its sources, config, metrics against the classical detector, sha256) and
a ``catalogue.toml`` that registers it (``catalogues = ["OUT/catalogue.toml"]`` in a config).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import save_file

from patina.models import synthetic as syn
from patina.models.learned import unet_probability
from patina.models.stage import StageInput
from patina.models.unet import UNet, UNetConfig, config_metadata
from patina.models.weights import atomic_bytes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch: int = 8
    crop: int = 128
    lr: float = 2e-3
    width: int = 16
    depth: int = 3
    seed: int = 0
    checkpoint_every: int = 200
    eval_images: int = 40
    device: str = "auto"


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files


def load_image(path: Path, min_side: int) -> np.ndarray:
    """A working float32 RGB image whose short side is at least ``min_side`` px."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"{path}: not a readable image")
    rgb = pixels[..., ::-1].astype(np.float32) / 255.0
    short = min(rgb.shape[:2])
    if short < min_side:
        factor = min_side / short
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor)), cv2.INTER_CUBIC)
    return np.ascontiguousarray(rgb)


def damage_sample(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A randomly aged copy of ``clean`` and the mask of the pixels its local damage destroyed.

    Global changes (toning, fading, blur) come first, local damage (dust, scratches, cracks,
    creases, torn corners, stains) on top, scanner grain or JPEG last, as on a real scan.
    """
    image = clean
    if rng.random() < 0.5:
        image = (syn.sepia(image, float(rng.uniform(0.6, 1.0))) if rng.random() < 0.5 else syn.grayscale(image)).image
    if rng.random() < 0.5:
        image = syn.fade(image, float(rng.uniform(0.1, 0.4))).image
    if rng.random() < 0.3:
        image = syn.blur(image, float(rng.uniform(0.5, 1.2))).image
    mask = np.zeros(image.shape[:2], bool)
    local = [
        lambda im: syn.dust(im, int(rng.integers(3, 25)), rng),
        lambda im: syn.scratches(im, int(rng.integers(1, 3)), rng, bright=bool(rng.random() < 0.6)),
        lambda im: syn.cracks(im, rng, branches=int(rng.integers(1, 4))),
        lambda im: syn.crease(im, rng, width=int(rng.integers(2, 4))),
        lambda im: syn.torn_corner(im, rng, size=float(rng.uniform(0.1, 0.3))),
        lambda im: syn.stains(im, rng, count=int(rng.integers(1, 3))),
    ]
    for index in rng.permutation(len(local))[: int(rng.integers(1, 4))]:
        damaged = local[index](image)
        image, mask = damaged.image, mask | damaged.mask
    if rng.random() < 0.6:
        image = syn.grain(image, float(rng.uniform(0.005, 0.03)), rng).image
    if rng.random() < 0.3:
        image = syn.jpeg(image, int(rng.integers(40, 90))).image
    return image.astype(np.float32), mask


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return image[y : y + size, x : x + size]


def make_batch(files: list[Path], config: TrainConfig, rng: np.random.Generator):
    """``config.batch`` damaged crops (images read on demand: a corpus need not fit in memory) and their masks."""
    inputs, masks = [], []
    for _ in range(config.batch):
        clean = random_crop(load_image(files[int(rng.integers(len(files)))], config.crop), config.crop, rng)
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        image, mask = damage_sample(np.ascontiguousarray(clean), rng)
        inputs.append(image.transpose(2, 0, 1))
        masks.append(mask[None].astype(np.float32))
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(masks))


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (damage weighted up: it is rare) plus soft Dice."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(4.0))
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def mask_metrics(found: np.ndarray, truth: np.ndarray, tolerance: int = 0) -> dict[str, float]:
    """Pixel precision, recall, F1 and IoU of a mask; with ``tolerance``, precision and recall count a
    pixel within that many px of the other mask as matched (IoU stays strict)."""
    tp = float((found & truth).sum())
    hit_found, hit_truth = tp, tp
    if tolerance:
        kernel = np.ones((2 * tolerance + 1,) * 2, np.uint8)
        hit_found = float((found & cv2.dilate(truth.astype(np.uint8), kernel).astype(bool)).sum())
        hit_truth = float((truth & cv2.dilate(found.astype(np.uint8), kernel).astype(bool)).sum())
    precision = hit_found / max(float(found.sum()), 1.0)
    recall = hit_truth / max(float(truth.sum()), 1.0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "iou": tp / max(float((found | truth).sum()), 1.0),
    }


def evaluate(model: UNet, images: list[np.ndarray], device: str, seed: int) -> dict[str, dict[str, float]]:
    """Pixel metrics of the model and of the default (classical) detector on the same damaged images."""
    from patina.models.registry import DEFAULT_MODELS, build_stage, default_params

    model.eval()
    baseline = build_stage(DEFAULT_MODELS["detect_damage"], default_params(DEFAULT_MODELS["detect_damage"]))
    learned, classical, truth = [], [], []
    for index, clean in enumerate(images):
        rng = np.random.default_rng(seed * 1000 + index)
        image, mask = damage_sample(clean, rng)
        learned.append((unet_probability(model, image, device) > 0.5).ravel())
        classical.append(baseline.process(StageInput(image)).mask.ravel())
        truth.append(mask.ravel())
    truth_all = np.concatenate(truth)
    return {
        name: {k: round(v, 4) for k, v in mask_metrics(np.concatenate(found), truth_all).items()}
        for name, found in (("learned", learned), ("classical", classical))
    }


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


ATTRIBUTION_FIELDS = ("file", "license", "attribution", "source_url")


def _sources(data: Path, files: list[Path]) -> list[dict[str, str]]:
    """Attribution rows (ATTRIBUTION.csv in the data folder or its parent) of the images trained on."""
    import csv

    used = {p.resolve() for p in files}
    for candidate in (data / "ATTRIBUTION.csv", data.parent / "ATTRIBUTION.csv"):
        if candidate.is_file():
            with open(candidate, newline="") as handle:
                rows = list(csv.DictReader(handle))
            return [
                {k: row.get(k, "") for k in ATTRIBUTION_FIELDS}
                for row in rows
                if (candidate.parent / row.get("file", "")).resolve() in used
            ]
    return []


def _write_sources(path: Path, rows: list[dict[str, str]]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ATTRIBUTION_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_bytes(path, buffer.getvalue().encode())


def train_detector(data: Path, out: Path, val: Path | None = None, config: TrainConfig | None = None) -> dict:
    """Train (or resume) the damage U-Net; returns the model card."""
    config = config or TrainConfig()
    out.mkdir(parents=True, exist_ok=True)
    device = _device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_files = image_files(data)
    net_config = UNetConfig(width=config.width, depth=config.depth)
    model = UNet(net_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    checkpoint = out / "checkpoint.pt"
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rng = np.random.default_rng([config.seed, step])  # the data stream resumes from the step, not from zero
        log.info("resuming from step %d (%s)", step, checkpoint)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(config.steps, 1), last_epoch=step - 1 if step else -1
    )
    started, losses = time.perf_counter(), []
    model.train()
    while step < config.steps:
        inputs, targets = make_batch(train_files, config, rng)
        loss = mask_loss(model(inputs.to(device)), targets.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        if step % config.checkpoint_every == 0 or step == config.steps:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
            torch.save(state, checkpoint.with_suffix(".tmp"))
            os.replace(checkpoint.with_suffix(".tmp"), checkpoint)
            log.info("step %d/%d loss %.4f", step, config.steps, np.mean(losses[-50:]))
            rng = np.random.default_rng([config.seed, step])  # the same stream a resumed run would draw
    weights = out / "model.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights.with_suffix(".tmp")), metadata=config_metadata(net_config))
    os.replace(weights.with_suffix(".tmp"), weights)
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    val_images = [load_image(p, config.crop) for p in image_files(val)[: config.eval_images]] if val else []
    metrics = evaluate(model, val_images, device, config.seed) if val_images else {}
    sources = _sources(data, train_files)
    if sources:
        _write_sources(out / "training-data.csv", sources)
    card = {
        "id": f"local/damage-unet@{sha[:12]}",
        "architecture": "PatinaUNet",
        "stage": "detect_damage",
        "weights": weights.name,
        "sha256": sha,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": asdict(config),
        "unet": asdict(net_config),
        "device": device,
        "train_seconds": round(time.perf_counter() - started, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "data": {
            "train": str(data),
            "train_images": len(train_files),
            "val": str(val) if val else None,
            "val_images": len(val_images),
            "attribution": "training-data.csv" if sources else None,
            "licences": dict(Counter(row["license"] for row in sources).most_common()),
        },
        "damage": "patina.models.training.damage_sample: dust, scratches, cracks, creases, torn corners, stains "
        "over toning, fading, blur, grain, JPEG",
        "metrics": metrics,
    }
    atomic_bytes(out / "model-card.json", json.dumps(card, indent=1).encode())
    atomic_bytes(out / "model-card.md", _card_markdown(card).encode())
    entry = (
        f'[[model]]\nid = "{card["id"]}"\nstage = "detect_damage"\narchitecture = "PatinaUNet"\n'
        f'license = "as its training data"\ndescription = "damage U-Net trained by patina train detect"\n'
        f'weights_uri = "{weights.resolve()}"\nsha256 = "{sha}"\ninput_multiple = {net_config.multiple}\n'
    )
    atomic_bytes(out / "catalogue.toml", entry.encode())
    return card


def _card_markdown(card: dict) -> str:
    lines = [
        f"# {card['id']}",
        "",
        f"Damage-mask U-Net ({card['parameters']} parameters), sha256 `{card['sha256']}`.",
        "",
    ]
    data = card["data"]
    lines += [
        f"- trained on {data['train_images']} images from `{data['train']}`, "
        f"{card['config']['steps']} steps on {card['device']} in {card['train_seconds']} s",
        f"- licences of the training images: {data['licences'] or 'not recorded'}"
        + (f" (attribution of each: `{data['attribution']}`)" if data["attribution"] else ""),
        f"- synthetic damage: {card['damage']}",
    ]
    if card["metrics"]:
        lines += ["", f"Validation ({card['data']['val_images']} images, fixed seeds), pixel metrics:", ""]
        lines += ["| detector | precision | recall | F1 | IoU |", "|---|---|---|---|---|"]
        for name, m in card["metrics"].items():
            lines.append(f"| {name} | {m['precision']} | {m['recall']} | {m['f1']} | {m['iou']} |")
    lines += ["", "Configuration: `" + json.dumps(card["config"]) + "`", ""]
    return "\n".join(lines)
