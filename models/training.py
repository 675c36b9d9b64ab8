"""Training patina's own models on synthetic damage over clean photographs.

``patina train detect|inpaint|colorize --data DIR --out DIR`` calls :func:`train`: a small
U-Net (:mod:`patina.models.unet`) learns the task (:mod:`patina.models.training_tasks`) from
random crops of the clean images in DIR, damaged on the fly. Each step's batch is drawn from
a generator seeded by ``(seed, step)``, so a run is deterministic on one device whatever the
number of data workers, and resumable from the checkpoint written every ``checkpoint_every``
steps. The result is ``model.safetensors`` (configuration in its metadata), a model card
(``model-card.md`` and ``.json``: data and its sources, config, metrics against the task's
baseline on the validation images, sha256) and a ``catalogue.toml`` that registers it
(``catalogues = ["OUT/catalogue.toml"]`` in a config).
"""

from __future__ import annotations

import csv
import hashlib
import io
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

from patina.models.atomic_files import atomic_bytes, replacing
from patina.models.damage_textures import load_textures
from patina.models.networks import best_device
from patina.models.training_tasks import TASKS, Task, Textures
from patina.models.unet import UNet, UNetConfig, config_metadata

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
    workers: int | None = None  # data-loading processes; None: up to 8, one core left to the trainer
    rebalance: float = 0.0  # colorize: weigh rare colours up (0 none, 1 Zhang et al.'s class rebalancing)
    init: str | None = None  # fine-tune from this model id or safetensors file (its width and depth)
    pos_weight: float = 4.0  # detect: weight of damage pixels in the cross-entropy (damage is rare)
    textures: str | None = None  # .npz bank of real damage textures to paste (benchmarks/real_damage.py textures)


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


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return image[y : y + size, x : x + size]


def make_batch(
    files: list[Path], task: Task, config: TrainConfig, step: int, textures: Textures = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``step``'s ``config.batch`` training pairs from random crops (images read on demand: a corpus
    need not fit in memory); drawn from ``(seed, step)`` alone."""
    rng = np.random.default_rng([config.seed, step])
    inputs, targets = [], []
    for _ in range(config.batch):
        clean = random_crop(load_image(files[int(rng.integers(len(files)))], config.crop), config.crop, rng)
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        x, y = task.pair(np.ascontiguousarray(clean), rng, textures)
        inputs.append(x.transpose(2, 0, 1))
        targets.append(y.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))


class _Batches(torch.utils.data.Dataset):
    """Batches by step number, for a DataLoader whose workers build them in parallel."""

    def __init__(self, files: list[Path], task: Task, config: TrainConfig) -> None:
        self.files, self.task, self.config = files, task, config
        self.textures = load_textures(config.textures) if config.textures else ()

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return make_batch(self.files, self.task, self.config, step, self.textures)


def _worker_init(_worker: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _batches(files: list[Path], task: Task, config: TrainConfig, start: int):
    workers = config.workers if config.workers is not None else min(8, max((os.cpu_count() or 1) - 1, 0))
    return torch.utils.data.DataLoader(
        _Batches(files, task, config),
        batch_size=None,
        sampler=range(start, config.steps),
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        pin_memory=torch.cuda.is_available(),
    )


def starting_point(reference: str, task: Task) -> tuple[UNet, str]:
    """The U-Net to fine-tune from ``reference`` (a registered model id or a safetensors file), and the
    sha256 of its weights; registered weights are verified as for a run."""
    from patina.models.registry import entry
    from patina.models.unet import read_unet
    from patina.models.weights import file_sha256, weights_path

    if Path(reference).is_file():
        path = Path(reference)
    else:
        try:
            spec = entry(reference).spec
        except KeyError as exc:
            raise ValueError(f"--init {reference!r}: neither a file nor a registered model ({exc.args[0]})") from None
        if spec.architecture != "PatinaUNet" or spec.stage != task.stage:
            raise ValueError(
                f"--init {reference!r}: a {spec.architecture} for {spec.stage}, not a U-Net for {task.stage}"
            )
        path = weights_path(spec)
    return read_unet(path, task.stage), file_sha256(path)


ATTRIBUTION_FIELDS = ("file", "license", "attribution", "source_url")


def _sources(data: Path, files: list[Path]) -> list[dict[str, str]]:
    """Attribution rows (ATTRIBUTION.csv in the data folder or its parent) of the images trained on."""
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
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ATTRIBUTION_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_bytes(path, buffer.getvalue().encode())


def train(task_name: str, data: Path, out: Path, val: Path | None = None, config: TrainConfig | None = None) -> dict:
    """Train (or resume) the U-Net of ``task_name`` (detect, inpaint, colorize); returns the model card."""
    if task_name not in TASKS:
        raise ValueError(f"unknown training task {task_name!r}; known: {sorted(TASKS)}")
    task, config = TASKS[task_name], config or TrainConfig()
    out.mkdir(parents=True, exist_ok=True)
    device = best_device() if config.device == "auto" else config.device  # auto: as inference chooses
    torch.manual_seed(config.seed)
    train_files = image_files(data)
    val_files = image_files(val)[: config.eval_images] if val else []
    if config.init:  # fine-tuning: the starting network's weights and shape
        model, init_sha = starting_point(config.init, task)
        net_config = model.config
    else:
        net_config, init_sha = UNetConfig(task.in_channels, task.out_channels, config.width, config.depth), None
        model = UNet(net_config)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    checkpoint = out / "checkpoint.pt"
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("task", "detect") != task.name or state.get("unet") != asdict(net_config):
            raise ValueError(f"{checkpoint}: a checkpoint of another task or network; use a fresh --out folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        log.info("resuming from step %d (%s)", step, checkpoint)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(config.steps, 1), last_epoch=step - 1 if step else -1
    )
    started, losses = time.perf_counter(), []
    for inputs, targets in _batches(train_files, task, config, step):
        inputs = inputs.to(device, non_blocking=True)
        loss = task.loss(model(inputs), targets.to(device, non_blocking=True), inputs, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        if step % config.checkpoint_every == 0 or step == config.steps:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                     "task": task.name, "unet": asdict(net_config)}  # fmt: skip
            with replacing(checkpoint) as tmp:
                torch.save(state, tmp)
            log.info("%s step %d/%d loss %.4f", task.name, step, config.steps, np.mean(losses[-50:]))
    train_seconds = round(time.perf_counter() - started, 1)
    weights = out / "model.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with replacing(weights) as tmp:
        save_file(state, str(tmp), metadata={**config_metadata(net_config), "task": task.name})
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    model.eval()
    val_images = [load_image(p, config.crop) for p in val_files]
    metrics = task.evaluate(model, val_images, device, config.seed) if val_images else {}
    sources = _sources(data, train_files)
    if sources:
        _write_sources(out / "training-data.csv", sources)
    card = {
        "id": f"local/{task.model_name}@{sha[:12]}",
        "architecture": "PatinaUNet",
        "task": task.name,
        "stage": task.stage,
        "weights": weights.name,
        "sha256": sha,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": asdict(config),
        "unet": asdict(net_config),
        "init": {"model": config.init, "sha256": init_sha} if config.init else None,
        "device": device,
        "train_seconds": train_seconds,
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "data": {
            "train": str(data),
            "train_images": len(train_files),
            "val": str(val) if val else None,
            "val_images": len(val_images),
            "attribution": "training-data.csv" if sources else None,
            "licences": dict(Counter(row["license"] for row in sources).most_common()),
        },
        "summary": task.summary,
        "metrics": metrics,
    }
    atomic_bytes(out / "model-card.json", json.dumps(card, indent=1).encode())
    atomic_bytes(out / "model-card.md", _card_markdown(card).encode())
    fields = {
        "id": card["id"],
        "stage": task.stage,
        "architecture": "PatinaUNet",
        "license": "as its training data",
        "description": f"{task.model_name} trained by patina train {task.name}",
        "weights_uri": weights.name,
        "sha256": sha,
    }  # a JSON string is a TOML basic string: quotes, backslashes and control characters escaped
    entry = "[[model]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in fields.items())
    atomic_bytes(out / "catalogue.toml", (entry + f"input_multiple = {net_config.multiple}\n").encode())
    return card


def _card_markdown(card: dict) -> str:
    data = card["data"]
    lines = [
        f"# {card['id']}",
        "",
        f"patina U-Net for `{card['stage']}` ({card['parameters']} parameters), sha256 `{card['sha256']}`.",
        "",
        f"- task: {card['summary']}",
        f"- trained on {data['train_images']} images from `{data['train']}`, "
        f"{card['config']['steps']} steps on {card['device']} in {card['train_seconds']} s",
        *(
            [f"- fine-tuned from `{card['init']['model']}` (sha256 `{card['init']['sha256']}`)"]
            if card.get("init")
            else []
        ),
        f"- licences of the training images: {data['licences'] or 'not recorded'}"
        + (f" (attribution of each: `{data['attribution']}`)" if data["attribution"] else ""),
    ]
    if card["metrics"]:
        columns = list(next(iter(card["metrics"].values())))
        lines += ["", f"Validation ({data['val_images']} images, fixed seeds):", ""]
        lines += ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for name, m in card["metrics"].items():
            lines.append(f"| {name} | " + " | ".join(str(m[c]) for c in columns) + " |")
    lines += ["", "Configuration: `" + json.dumps(card["config"]) + "`", ""]
    return "\n".join(lines)
