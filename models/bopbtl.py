"""The scratch detector of Bringing-Old-Photos-Back-to-Life (Wan et al., CVPR 2020; MIT licence), in the
state-dict layout of its published checkpoint (``Global/checkpoints/detection/FT_Epoch_latest.pt``).

A U-Net on luma: a 7x7 stem, four levels of anti-aliased downsampling (a 3x3 convolution, batch norm,
leaky ReLU, then a fixed [1 2 1] x [1 2 1] blur with stride 2) each followed by two 3x3 conv + BN blocks
doubling the width (64 to 1024 channels), bilinear upsampling with skip connections, and a 3x3 head
giving one logit per pixel. Its own pre- and post-processing, as the publisher's ``detection.py``: the
image as 8-bit luma (ITU-R 601), normalised to [-1, 1]; a sigmoid; damage where it reaches 0.4. Written
here from the architecture's description (the module names follow the checkpoint's keys); spandrel does
not know this network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

ARCHITECTURE = "BOPBTLScratchUNet"
DEPTH, WIDTH_LOG2 = 4, 6  # the published detector: depth 4, 2**6 = 64 channels at full resolution
LUMA_601 = (0.299, 0.587, 0.114)  # PIL's convert("L"), as the publisher's detection.py reads its input


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling (Zhang 2019): a fixed normalised [1 2 1] outer product, per channel,
    after reflection padding. The filter is a buffer, as in the checkpoint (``filt``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum())[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.block = nn.Sequential(*_conv_bn(c_in, c_out), *_conv_bn(c_out, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.ReflectionPad2d(1),
            nn.Conv2d(c_in, c_out, 3),
        )  # fmt: skip
        self.conv_block = ConvBlock(c_in, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        dy, dx = (skip.shape[2] - up.shape[2]) // 2, (skip.shape[3] - up.shape[3]) // 2
        return self.conv_block(torch.cat([up, skip[:, :, dy : dy + up.shape[2], dx : dx + up.shape[3]]], 1))


class ScratchUNet(nn.Module):
    """The published scratch detector: luma in [-1, 1] ``(N, 1, H, W)`` to damage logits ``(N, 1, H, W)``;
    H and W multiples of 16."""

    def __init__(self, depth: int = DEPTH, wf: int = WIDTH_LOG2) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(1, 2**wf, 7), nn.LeakyReLU(0.2, True))
        widths = [2 ** (wf + i) for i in range(depth + 1)]
        self.down_sample = nn.ModuleList(
            nn.Sequential(*_conv_bn(widths[i], widths[i]), BlurDownsample(widths[i])) for i in range(depth)
        )
        self.down_path = nn.ModuleList(ConvBlock(widths[i], widths[i + 1]) for i in range(depth))
        self.up_path = nn.ModuleList(UpBlock(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        self.last = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(widths[0], 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for down, block in zip(self.down_sample, self.down_path, strict=True):
            skips.append(x)
            x = block(down(x))
        for up, skip in zip(self.up_path, reversed(skips), strict=True):
            x = up(x, skip)
        return self.last(x)


class ScratchProbability(nn.Module):
    """RGB in [0, 1] to the probability of damage, with the publisher's pre-processing (601 luma,
    quantised to 8 bits as its PIL input is, normalised to [-1, 1])."""

    def __init__(self, net: ScratchUNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("luma", torch.tensor(LUMA_601).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        gray = (rgb[:, :3] * self.luma.to(rgb.dtype)).sum(1, keepdim=True) if rgb.shape[1] >= 3 else rgb
        gray = torch.round(gray.clamp(0, 1) * 255.0) / 255.0
        return torch.sigmoid(self.net(gray * 2.0 - 1.0))


def read_scratch_unet(path: Path) -> ScratchUNet:
    """The detector from a checkpoint in the publisher's layout: ``{"model_state": state_dict, ...}`` (as
    released), a bare state dict, or either saved from ``DataParallel`` (keys prefixed ``module.``)."""
    from patina.models.networks import read_state_dict
    from patina.models.weights import WeightsError

    state = read_state_dict(path)
    state = state.get("model_state", state)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    net = ScratchUNet()
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        raise WeightsError(f"{path}: not the published scratch detector's layout: {exc}") from exc
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]  # older torch saved none
    if missing or unexpected:
        raise WeightsError(
            f"{path}: not the published scratch detector's layout: missing {missing[:4]}, unexpected "
            f"{list(unexpected)[:4]}"
        )
    return net


@dataclass(frozen=True)
class _Requirements:
    multiple_of: int = 16


@dataclass(frozen=True)
class _Architecture:
    id: str = ARCHITECTURE


class ScratchDescriptor:
    """The detector dressed as the part of a spandrel descriptor :class:`~patina.models.networks.Network`
    uses (as :class:`~patina.models.unet.UNetDescriptor` is)."""

    scale = 1
    supports_half = False  # batch norm statistics of a float32 checkpoint: not measured in half precision
    architecture = _Architecture()
    size_requirements = _Requirements()
    pad_mode = "reflect"
    halo = None

    def __init__(self, net: ScratchUNet) -> None:
        self.model: nn.Module = ScratchProbability(net)

    def to(self, device: str) -> ScratchDescriptor:
        self.model.to(device)
        return self

    def eval(self) -> ScratchDescriptor:
        self.model.eval()
        return self

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(*tensors)
