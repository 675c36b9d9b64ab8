"""What ``patina train detect|inpaint|colorize`` teach: one :class:`Task` per model of our own.

A task turns a clean crop into a training pair (synthetic damage drawn by
:mod:`patina.models.synthetic`), scores the network's output, and evaluates a trained network
on validation images against the baseline it must beat (the classical detector, Telea
inpainting, trivial colourings). The training loop itself is task-blind
(:mod:`patina.models.training`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from patina.models import synthetic as syn
from patina.models.damage_textures import DamageTexture, composite
from patina.models.image import AB_RANGE, decode_ab, encode_ab, lab_ab, luminance, with_ab
from patina.models.metrics import ab_error, colourfulness, mask_metrics, psnr, ssim
from patina.models.networks import run_padded
from patina.models.stage import StageInput
from patina.models.unet import AB_BINS, UNet, UNetDescriptor, ab_bin_targets

if TYPE_CHECKING:  # the trainer imports this module
    from patina.models.training import TrainConfig

Pair = tuple[np.ndarray, np.ndarray]  # network input (H, W, C_in), target (H, W, C_out), float32
Textures = tuple[DamageTexture, ...]  # a bank of real damage textures, empty when none was given


def _age_globally(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Toning, fading or blur, each by chance: the condition of the print around its local damage."""
    image = clean
    if rng.random() < 0.5:
        image = (syn.sepia(image, float(rng.uniform(0.6, 1.0))) if rng.random() < 0.5 else syn.grayscale(image)).image
    if rng.random() < 0.5:
        image = syn.fade(image, float(rng.uniform(0.1, 0.4))).image
    if rng.random() < 0.3:
        image = syn.blur(image, float(rng.uniform(0.5, 1.2))).image
    return image


def _local_damage(image: np.ndarray, rng: np.random.Generator, textures: Textures = ()) -> syn.Degraded:
    """One to four local damages over ``image``: dust, scratches, forking emulsion cracks (bright or dark),
    long faint scratches, a crease, a torn corner or edge, stains, and, given a bank of real damage
    textures (:mod:`patina.models.damage_textures`), real cracks and spots pasted on (twice as likely)."""
    local = [
        lambda im: syn.dust(im, int(rng.integers(3, 25)), rng),
        lambda im: syn.scratches(im, int(rng.integers(1, 3)), rng, bright=bool(rng.random() < 0.6)),
        lambda im: syn.cracks(im, rng, branches=int(rng.integers(1, 4))),
        lambda im: syn.crack_network(im, rng, cracks=int(rng.integers(1, 4)), bright=True),
        lambda im: syn.crack_network(im, rng, cracks=int(rng.integers(1, 3)), bright=False, width=(1, 3)),
        lambda im: syn.long_scratches(im, rng, count=int(rng.integers(1, 4))),
        lambda im: syn.crease(im, rng, width=int(rng.integers(2, 4)), bright=bool(rng.random() < 0.7)),
        lambda im: syn.torn_corner(im, rng, size=float(rng.uniform(0.1, 0.3))),
        lambda im: syn.torn_edge(im, rng, depth=float(rng.uniform(0.03, 0.12))),
        lambda im: syn.stains(im, rng, count=int(rng.integers(1, 3))),
    ]
    if textures:
        real = lambda im: composite(im, textures, rng, count=int(rng.integers(1, 6)))  # noqa: E731
        local += [real, real]
    mask = np.zeros(image.shape[:2], bool)
    for index in rng.permutation(len(local))[: int(rng.integers(1, 5))]:
        damaged = local[index](image)
        image, mask = damaged.image, mask | damaged.mask
    return syn.Degraded(image, mask)


INSCRIBED = 0.3  # share of detector samples with writing on the print (content, never in the mask)
UNDAMAGED = 0.1  # share of detector samples with no local damage at all


def damage_sample(
    clean: np.ndarray, rng: np.random.Generator, textures: Textures = (), inscribed: float = INSCRIBED,
    undamaged: float = UNDAMAGED,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A randomly aged copy of ``clean`` and the mask of the pixels its local damage destroyed.

    Writing on the print comes first (an ``inscribed`` share: part of the object, not in the mask),
    then global changes (toning, fading, blur), local damage on top (none in an ``undamaged``
    share: a detector must also learn to mark nothing), scanner grain or JPEG last, as on a real scan.
    """
    if rng.random() < inscribed:
        clean = syn.inscription(clean, rng, lines=int(rng.integers(1, 4))).image
    aged = _age_globally(clean, rng)
    if rng.random() < undamaged:
        damaged = syn.Degraded(aged, np.zeros(aged.shape[:2], bool))
    else:
        damaged = _local_damage(aged, rng, textures)
    image = damaged.image
    if rng.random() < 0.6:
        image = syn.grain(image, float(rng.uniform(0.005, 0.03)), rng).image
    if rng.random() < 0.3:
        image = syn.jpeg(image, int(rng.integers(40, 90))).image
    return image.astype(np.float32), damaged.mask


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1,) * 2, np.uint8)).astype(bool)


def hole_input(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The inpainter's input: the image with the hole blanked, then the hole as a fourth channel."""
    keep = (~hole)[..., None].astype(np.float32)
    return np.concatenate([image * keep, 1.0 - keep], axis=2).astype(np.float32)


def _averaged(scores: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per model, the mean of each metric over the validation images."""
    return {
        name: {metric: round(float(np.mean([row[metric] for row in rows])), 4) for metric in rows[0]}
        for name, rows in scores.items()
    }


# --- detect: damage masks ---------------------------------------------------------------------


def _detect_pair(clean: np.ndarray, rng: np.random.Generator, textures: Textures) -> Pair:
    image, mask = damage_sample(clean, rng, textures)
    return image, mask[..., None].astype(np.float32)


def _mask_loss(logits: torch.Tensor, target: torch.Tensor, _inputs: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Binary cross-entropy (damage weighted up by ``config.pos_weight``: it is rare) plus soft Dice."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=torch.tensor(config.pos_weight, device=logits.device)
    )
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def _baseline(model_id: str):
    from patina.models.registry import build_stage, default_params

    return build_stage(model_id, default_params(model_id))


def run_unet(model: UNet, stage: str, image: np.ndarray, device: str, channels: int | None = None) -> np.ndarray:
    """A U-Net in training over one image, as inference runs it (its stage's wrapper, the one runner)."""
    descriptor = UNetDescriptor(model, stage)
    return run_padded(descriptor, image, model.config.multiple, device, pad_mode=descriptor.pad_mode, channels=channels)


def _evaluate_detect(model: UNet, images: list[np.ndarray], device: str, seed: int) -> dict[str, dict[str, float]]:
    """Pixel metrics of the network and of the classical detector on the same damaged images."""
    baseline = _baseline("classical/dust-scratch-detector@1")
    learned, classical, truth = [], [], []
    for index, clean in enumerate(images):
        image, mask = damage_sample(clean, np.random.default_rng(seed * 1000 + index))
        learned.append((run_unet(model, "detect_damage", image, device)[..., 0] > 0.5).ravel())
        classical.append(baseline.process(StageInput(image)).mask.ravel())
        truth.append(mask.ravel())
    truth_all = np.concatenate(truth)
    return {
        name: {k: round(v, 4) for k, v in mask_metrics(np.concatenate(found), truth_all).items()}
        for name, found in (("learned", learned), ("classical", classical))
    }


# --- inpaint: filling holes ---------------------------------------------------------------------

HOLE_GROWTH = 1  # px the true damage mask is grown by in evaluation (detected masks are generous)


def _inpaint_pair(clean: np.ndarray, rng: np.random.Generator, textures: Textures) -> Pair:
    base = _age_globally(clean, rng)
    if rng.random() < 0.5:
        base = syn.grain(base, float(rng.uniform(0.003, 0.02)), rng).image
    hole = grow(_local_damage(base, rng, textures).mask, int(rng.integers(0, 4)))  # masks from detectors are generous
    return hole_input(base, hole), base.astype(np.float32)


def _fill_loss(output: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor, _config: TrainConfig) -> torch.Tensor:
    """L1 inside the hole (what is filled) plus a tenth of it outside (the network must not drift)."""
    hole = inputs[:, 3:4]
    error = (output - target).abs()
    inside = (error * hole).sum() / (3 * hole.sum()).clamp(min=1.0)
    return inside + 0.1 * error.mean()


def fill(model: UNet, image: np.ndarray, hole: np.ndarray, device: str) -> np.ndarray:
    """The image with ``hole`` filled by an inpainting U-Net; pixels outside the hole unchanged."""
    out = run_unet(model, "inpaint", hole_input(image, hole), device, channels=3)
    return np.where(hole[..., None], out, image).astype(np.float32)


def _evaluate_inpaint(model: UNet, images: list[np.ndarray], device: str, seed: int) -> dict[str, dict[str, float]]:
    """PSNR/SSIM over the filled pixels, network vs Telea (the classical default), same holes."""
    telea = _baseline("classical/telea-inpaint@1")
    scores: dict[str, list[dict[str, float]]] = {"learned": [], "telea": []}
    for index, clean in enumerate(images):
        damaged = _local_damage(clean, np.random.default_rng(seed * 1000 + index))
        hole = grow(damaged.mask, HOLE_GROWTH)
        for name, filled in (
            ("learned", fill(model, damaged.image, hole, device)),
            ("telea", telea.process(StageInput(damaged.image, mask=hole)).image),
        ):
            scores[name].append({"psnr_hole": psnr(filled, clean, hole), "ssim_hole": ssim(filled, clean, hole)})
    return _averaged(scores)


# --- colorize: a*b* from luma -------------------------------------------------------------------


def _colorize_pair(clean: np.ndarray, _rng: np.random.Generator, _textures: Textures) -> Pair:
    return luminance(clean)[..., None], encode_ab(lab_ab(clean))


def _ab_bins_loss(
    logits: torch.Tensor, target: torch.Tensor, _inputs: torch.Tensor, config: TrainConfig
) -> torch.Tensor:
    """Cross-entropy against soft colour-bin targets, optionally class-rebalanced (Zhang et al. 2016).

    A classification keeps the several plausible colours of a grey (a red or a green apple)
    apart, where a regression averages them to brown-grey. With ``rebalance`` > 0 each pixel
    is weighed by how rare its colour is, to that power (prior from the batch itself, half
    mixed with uniform; 1 is Zhang's weighting): colours get more vivid, and less often right.
    """
    rebalance = config.rebalance
    soft = ab_bin_targets((target - 0.5) * AB_RANGE)
    loss = -(soft * torch.log_softmax(logits.float(), dim=1)).sum(1)
    if rebalance:
        prior = soft.mean((0, 2, 3))
        weights = (0.5 * prior + 0.5 / AB_BINS) ** -rebalance
        weights = weights / (prior * weights).sum()  # the mean pixel weight is 1
        loss = loss * (soft * weights.view(1, -1, 1, 1)).sum(1)
    return loss.mean()


def flat_sepia(image: np.ndarray) -> np.ndarray:
    """The trivial colouring: the luma on a sepia ramp (what toning, not colorization, gives)."""
    return syn.sepia(np.repeat(luminance(image)[..., None], 3, axis=2)).image


def _evaluate_colorize(model: UNet, images: list[np.ndarray], device: str, seed: int) -> dict[str, dict[str, float]]:
    """a*b* error against the photograph's own colours and colourfulness, network vs trivial colourings."""
    del seed  # deterministic: no damage is drawn
    rows: dict[str, list[dict[str, float]]] = {"learned": [], "gray": [], "flat_sepia": [], "truth": []}
    for clean in images:
        gray = np.repeat(luminance(clean)[..., None], 3, axis=2)
        ab = decode_ab(run_unet(model, "colorize", luminance(clean)[..., None], device))
        for name, colour in (
            ("learned", with_ab(clean, ab)),
            ("gray", gray),
            ("flat_sepia", with_ab(clean, lab_ab(flat_sepia(clean)))),
            ("truth", clean),
        ):
            rows[name].append({"ab_error": ab_error(colour, clean), "colourfulness": colourfulness(colour)})
    return _averaged(rows)


@dataclass(frozen=True)
class Task:
    name: str  # the CLI word
    stage: str  # the pipeline stage a trained model registers for
    model_name: str  # id: local/<model_name>@<sha256 prefix>
    in_channels: int
    out_channels: int
    summary: str  # for the model card
    pair: Callable[[np.ndarray, np.random.Generator, Textures], Pair]  # clean crop, rng, real damage textures
    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, TrainConfig], torch.Tensor]  # output, target, input
    evaluate: Callable[[UNet, list[np.ndarray], str, int], dict[str, dict[str, float]]]


TASKS = {
    t.name: t
    for t in (
        Task(
            "detect", "detect_damage", "damage-unet", 3, 1,
            "damage masks; synthetic damage: dust, scratches, hair-line and forking emulsion cracks, long faint "
            "scratches, creases, torn corners and edges, stains (and real damage textures with --textures) over "
            "toning, fading, blur, grain, JPEG; metrics: pixel precision/recall/F1/IoU vs the classical detector",
            _detect_pair, _mask_loss, _evaluate_detect,
        ),
        Task(
            "inpaint", "inpaint", "inpaint-unet", 4, 3,
            "fills holes (RGB with the hole blanked + hole mask -> RGB); holes: the masks of synthetic dust, "
            "scratches, cracks, creases, torn corners, stains grown 0-3 px, over toned/faded/blurred/grainy "
            "photographs; metrics: PSNR/SSIM over the filled pixels vs Telea",
            _inpaint_pair, _fill_loss, _evaluate_inpaint,
        ),
        Task(
            "colorize", "colorize", "colorize-unet", 1, AB_BINS,
            f"classifies each pixel's CIELAB a*b* into {AB_BINS} colour bins from Rec. 709 luma (soft targets, "
            "cross-entropy, class-rebalanced by the config's `rebalance`; decoded as the annealed mean, T 0.38); "
            "metrics: mean a*b* error against the photograph's colours and Hasler-Suesstrunk colourfulness "
            "vs gray and flat sepia",
            _colorize_pair, _ab_bins_loss, _evaluate_colorize,
        ),
    )
}  # fmt: skip
