"""A small U-Net: the architecture of patina's own learned models (damage masks first).

Sized by two numbers, ``width`` (channels of the first level) and ``depth`` (levels), so a
CPU-trainable model and a GPU one are the same code. The configuration travels in the
safetensors metadata of the weights (:func:`config_metadata`), so a file alone rebuilds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

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
