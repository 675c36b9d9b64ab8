"""A small U-Net: the architecture of patina's own learned models (damage masks, inpainting, colorization).

Sized by two numbers, ``width`` (channels of the first level) and ``depth`` (levels), so a
CPU-trainable model and a GPU one are the same code. The configuration travels in the
safetensors metadata of the weights (:func:`config_metadata`), so a file alone rebuilds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from patina.models.image import AB_RANGE

ARCHITECTURE = "PatinaUNet"


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 1
    width: int = 16
    depth: int = 3

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (one halving per level below the top)."""
        return 2 ** (self.depth - 1)

    @property
    def halo(self) -> int:
        """Context pixels a tile needs: 4 x 2^depth, beyond the convolutions' receptive radius (two 3x3
        per level down and up, level k counting 2^k px: 20, 44, 92 px for depths 3, 4, 5), so that
        the tiles' GroupNorm statistics stay close to the whole image's."""
        return 4 * 2**self.depth


def config_metadata(config: UNetConfig) -> dict[str, str]:
    return {"architecture": ARCHITECTURE, **{k: str(v) for k, v in asdict(config).items()}}


def config_from_metadata(metadata: dict[str, str] | None) -> UNetConfig:
    if not metadata or metadata.get("architecture") != ARCHITECTURE:
        raise ValueError(f"weights do not describe a {ARCHITECTURE} (safetensors metadata: {metadata})")
    return UNetConfig(**{k: int(metadata[k]) for k in ("in_channels", "out_channels", "width", "depth")})


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GroupNorm(min(8, c_out), c_out),
        nn.SiLU(),
    )


class UNet(nn.Module):
    """``(N, in_channels, H, W)`` -> ``(N, out_channels, H, W)`` logits; H, W multiples of ``config.multiple``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.width * 2**i for i in range(config.depth)]
        self.down = nn.ModuleList()
        c_in = config.in_channels
        for w in widths:
            self.down.append(_block(c_in, w))
            c_in = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_low, w_high in zip(widths[::-1][:-1], widths[::-1][1:], strict=True):
            self.up.append(nn.ConvTranspose2d(w_low, w_high, 2, stride=2))
            self.merge.append(_block(2 * w_high, w_high))
        self.head = nn.Conv2d(widths[0], config.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, block in enumerate(self.down):
            x = block(x)
            if index < len(self.down) - 1:
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


AB_CENTRES = tuple(float(v) for v in range(-120, 121, 16))
"""Centres of the colour bins along a* and along b* (CIELAB units): 16 x 16 = 256 bins."""
AB_BINS = len(AB_CENTRES) ** 2
ANNEALING_TEMPERATURE = 0.38  # Zhang et al. (2016): between the mean (1, greyish) and the mode (0, noisy)


def ab_bin_targets(ab: torch.Tensor, sigma: float = 8.0) -> torch.Tensor:
    """Soft colour-bin targets ``(N, AB_BINS, H, W)`` of a*b* ``(N, 2, H, W)``: a Gaussian of ``sigma``
    around each pixel's colour (separable over a* and b*), summing to 1."""
    centres = torch.tensor(AB_CENTRES, device=ab.device).view(1, -1, 1, 1)
    weight_a = torch.exp(-((ab[:, :1] - centres) ** 2) / (2 * sigma**2))
    weight_b = torch.exp(-((ab[:, 1:] - centres) ** 2) / (2 * sigma**2))
    joint = (weight_a[:, :, None] * weight_b[:, None]).flatten(1, 2)
    return joint / joint.sum(1, keepdim=True).clamp(min=1e-12)


def ab_from_logits(logits: torch.Tensor, temperature: float = ANNEALING_TEMPERATURE) -> torch.Tensor:
    """a*b* ``(N, 2, H, W)`` from colour-bin logits: the annealed mean of the bin centres."""
    n, _, h, w = logits.shape
    side = len(AB_CENTRES)
    prob = torch.softmax(logits.float() / temperature, dim=1).view(n, side, side, h, w)
    centres = torch.tensor(AB_CENTRES, device=logits.device).view(1, side, 1, 1)
    return torch.cat([(prob.sum(2) * centres).sum(1, keepdim=True), (prob.sum(1) * centres).sum(1, keepdim=True)], 1)


STAGE_CHANNELS = {"detect_damage": (3, 1), "inpaint": (4, 3), "colorize": (1, AB_BINS)}
"""(input, output) channels of a U-Net serving each stage."""


def read_unet(path, stage: str) -> UNet:
    """A U-Net from safetensors (its configuration in the metadata), checked to fit ``stage``."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        config = config_from_metadata(handle.metadata())
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    channels = (config.in_channels, config.out_channels)
    if STAGE_CHANNELS.get(stage) != channels:
        raise ValueError(
            f"{path}: a U-Net with {channels[0]} input and {channels[1]} output channels cannot serve stage "
            f"{stage!r} (it needs {STAGE_CHANNELS.get(stage)})"
        )
    model = UNet(config)
    model.load_state_dict(state)
    return model.eval()


class HoleFiller(nn.Module):
    """An inpainting U-Net with the masked-network signature ``(image, mask) -> image`` (as LaMa's):
    the hole is blanked and given as a fourth channel, as in training."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([image * (1 - mask), mask], dim=1))


class ColourDecoder(nn.Module):
    """A colorizing U-Net (luma -> colour-bin logits) giving encoded a*b* (:func:`patina.models.image.encode_ab`)."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet
        self.config = unet.config

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        return ab_from_logits(self.unet(gray)) / AB_RANGE + 0.5


class DamageProbability(nn.Module):
    """A damage-mask U-Net giving the per-pixel probability of damage (the logistic of its logit)."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.unet(image))


WRAPPERS: dict[str, type[nn.Module]] = {
    "detect_damage": DamageProbability,
    "inpaint": HoleFiller,
    "colorize": ColourDecoder,
}
"""What a U-Net of each stage is wrapped in to serve the network stages."""


@dataclass(frozen=True)
class _SizeRequirements:
    multiple_of: int


@dataclass(frozen=True)
class _Architecture:
    id: str = ARCHITECTURE


class UNetDescriptor:
    """patina's U-Net dressed as the part of a spandrel model descriptor that
    :class:`~patina.models.networks.Network` uses, so the network stages run it unchanged."""

    scale = 1
    supports_half = True
    architecture = _Architecture()
    pad_mode = "replicate"  # as in training

    def __init__(self, unet: UNet, stage: str) -> None:
        self.model: nn.Module = WRAPPERS[stage](unet)
        self.size_requirements = _SizeRequirements(unet.config.multiple)
        self.halo = unet.config.halo  # a finite receptive field: tiles with this much context are exact

    def to(self, device: str) -> UNetDescriptor:
        self.model.to(device)
        return self

    def eval(self) -> UNetDescriptor:
        self.model.eval()
        return self

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(*tensors)
