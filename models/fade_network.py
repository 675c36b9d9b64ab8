"""The network of :mod:`patina.models.fading`: features -> density curves, its training and evaluation."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from patina.models import synthetic as syn
from patina.models.atomic_files import atomic_bytes, replacing
from patina.models.fading import FEATURES, FadeEstimate, fade_features, thumbnail
from patina.models.tone import to_density, tone_change

log = logging.getLogger(__name__)


class FadeNet(torch.nn.Module):
    """Features -> per-channel density ``scale`` (0.4-2.5) and ``offset`` (-0.4-0.4); input normalised
    by the training set's mean and spread (kept in the state dict)."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(FEATURES))
        self.register_buffer("std", torch.ones(FEATURES))
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, 6),
        )  # fmt: skip
        torch.nn.init.zeros_(self.layers[-1].weight)  # starts as the identity curves
        torch.nn.init.zeros_(self.layers[-1].bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.layers((features - self.mean) / self.std)
        return torch.exp(0.92 * torch.tanh(out[:, :3])), 0.4 * torch.tanh(out[:, 3:])


def estimate_fade(net: FadeNet, image: np.ndarray) -> FadeEstimate:
    """The curves ``net`` predicts for ``image`` and the colour change they would make."""
    with torch.inference_mode():
        scale, offset = net(torch.from_numpy(fade_features(image))[None])
    estimate = FadeEstimate(tuple(scale[0].tolist()), tuple(offset[0].tolist()), 0.0)
    small = thumbnail(image)
    effect = tone_change(small, estimate.apply(small))[1]
    return FadeEstimate(estimate.scale, estimate.offset, round(effect, 3))


def load_fade_net(path: str | Path) -> FadeNet:
    from safetensors.torch import load_file

    net = FadeNet()
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def _srgb(linear: torch.Tensor) -> torch.Tensor:
    x = linear.clamp(1e-6, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def _samples(files: list[Path], repeats: int, clean_share: float, seed: int):
    """Features, faded thumbnail densities and clean thumbnails for training: each file ``repeats`` times,
    faded at random (``synthetic.random_dye_fade``) or, with probability ``clean_share``, left as it is."""
    from patina.models.training import load_image

    rng = np.random.default_rng(seed)
    features, densities, cleans = [], [], []
    small = lambda image: cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)  # noqa: E731
    for path in files:
        clean = thumbnail(load_image(path, 32))
        for _ in range(repeats):
            faded = clean if rng.random() < clean_share else syn.random_dye_fade(clean, rng).image
            features.append(fade_features(faded))  # as at inference: of the thumbnail
            densities.append(to_density(small(faded)))  # the loss: on a 32 px copy (fading is pointwise)
            cleans.append(small(clean))
    return (torch.from_numpy(np.stack(a)) for a in (features, densities, cleans))


def train_fade(
    data: Path, out: Path, val: Path | None = None, epochs: int = 300, repeats: int = 4, seed: int = 0
) -> dict:
    """Train :class:`FadeNet` on the images under ``data``; write its weights and model card in ``out``."""
    from safetensors.torch import save_file

    from patina.models.training import _sources, _write_sources, image_files

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    files = image_files(data)
    started = time.perf_counter()
    features, densities, cleans = _samples(files, repeats, 0.3, seed)
    net = FadeNet()
    net.mean.copy_(features.mean(0))
    net.std.copy_(features.std(0).clamp_min(1e-4))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for batch in torch.randperm(len(features), generator=generator).split(256):
            scale, offset = net(features[batch])
            corrected = densities[batch] * scale[:, None, None] + offset[:, None, None]
            loss = (_srgb(10.0 ** -corrected.clamp_min(0.0)) - cleans[batch]).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        if epoch % 50 == 0 or epoch == epochs - 1:
            log.info("fade epoch %d/%d loss %.4f", epoch + 1, epochs, loss.item())
    weights = out / "model.safetensors"
    with replacing(weights) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata={"task": "fade"})
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    sources = _sources(data, files)
    if sources:
        _write_sources(out / "training-data.csv", sources)
    card = {
        "id": f"local/fade-curves@{sha[:12]}",
        "architecture": "PatinaFadeNet",
        "sha256": sha,
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_seconds": round(time.perf_counter() - started, 1),
        "device": "cpu",
        "config": {"epochs": epochs, "repeats": repeats, "clean_share": 0.3, "seed": seed},
        "final_loss": round(loss.item(), 5),
        "data": {
            "train": str(data),
            "train_images": len(files),
            "attribution": "training-data.csv" if sources else None,
        },
        "metrics": evaluate_fade(net.eval(), image_files(val), seed) if val else {},
    }
    atomic_bytes(out / "model-card.json", json.dumps(card, indent=1).encode())
    return card


def evaluate_fade(net: FadeNet, files: list[Path], seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean CIEDE2000 against the clean photographs (384 px): faded, corrected, and clean ones corrected."""
    from skimage.color import deltaE_ciede2000

    from patina.models.training import load_image

    def de2000(a: np.ndarray, b: np.ndarray) -> float:
        return float(deltaE_ciede2000(*(cv2.cvtColor(x, cv2.COLOR_RGB2LAB) for x in (a, b))).mean())

    rng = np.random.default_rng(seed + 1)
    rows = []
    for path in files:
        clean = thumbnail(load_image(path, 64), 384)
        faded = syn.random_dye_fade(clean, rng).image
        rows.append((de2000(faded, clean), de2000(estimate_fade(net, faded).apply(faded), clean),
                     de2000(estimate_fade(net, clean).apply(clean), clean)))  # fmt: skip
    faded, fixed, harmed = (round(float(np.mean(column)), 3) for column in zip(*rows, strict=True))
    return {"dE2000": {"faded": faded, "faded_corrected": fixed, "clean_corrected": harmed}}
