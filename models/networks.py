"""Load a registered network from verified weights and run it on working images.

Weights are read without executing pickled code: safetensors, or ``torch.load`` with
``weights_only=True`` for ``.pth``/``.ckpt``/``.pt`` (a spec may name a TorchScript archive
with ``converter = "torchscript"``: only its tensors are kept); ncnn files are converted
(:mod:`patina.models.ncnn`) and the converted state dict is cached beside the weights cache
as safetensors keyed by the source's sha256. spandrel detects the architecture from the state
dict; the spec's ``architecture`` must match what it detects.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from patina.models import bopbtl, ncnn, unet
from patina.models.atomic_files import replacing
from patina.models.spec import ModelSpec
from patina.models.tiling import blend_tiles
from patina.models.torch_compat import import_spandrel
from patina.models.weights import WeightsError, cache_dir, file_sha256, weights_path

log = logging.getLogger(__name__)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, never unpickling arbitrary objects."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if suffix in (".pth", ".ckpt", ".pt", ".bin"):
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"{path}: not a plain tensor checkpoint (weights-only load refused it): {exc}") from exc
        if not isinstance(loaded, dict):
            raise WeightsError(f"{path}: holds a {type(loaded).__name__}, not a state dict")
        return loaded
    raise WeightsError(f"{path}: unsupported weights format {suffix!r} (safetensors, pth, ckpt, pt)")


def _converted(spec: ModelSpec, source: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The ncnn weights as a state dict, converted once and cached as safetensors."""
    from safetensors.torch import load_file, save_file

    layout = spec.converter.removeprefix("ncnn-")
    target = cache_dir() / "converted" / f"{spec.sha256 or file_sha256(source)}-{layout}.safetensors"
    if not target.is_file():
        state = ncnn.convert(source, layout)
        with replacing(target) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        log.info("%s: converted %s to %s", spec.id, source.name, target)
    return load_file(str(target)), file_sha256(target)


def state_dict_for(spec: ModelSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """The verified state dict of ``spec`` and facts for provenance (converted weights' sha256)."""
    path = weights_path(spec)
    if spec.converter is None:
        return read_state_dict(path), {}
    if spec.converter == "torchscript":  # TorchScript archives (LaMa's published one) hold IR, not pickled code
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict()), {}
    if not spec.converter.startswith("ncnn-"):
        raise WeightsError(f"{spec.id}: unknown weights converter {spec.converter!r}")
    state, converted_sha = _converted(spec, path)
    return state, {"converted_sha256": converted_sha, "param_sha256": file_sha256(path.with_suffix(".param"))}


def pad_to_multiple(tensor: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    """Pad an ``(N, C, H, W)`` tensor on the bottom and right up to multiples of ``multiple``.

    Reflection needs a pad smaller than the side it mirrors; below that it replicates instead.
    """
    h, w = tensor.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return tensor
    if mode == "reflect" and (pad_h >= h or pad_w >= w):
        mode = "replicate"
    return torch.nn.functional.pad(tensor, (0, pad_w, 0, pad_h), mode=mode)


def run_padded(
    model: Any,
    image: np.ndarray,
    multiple: int,
    device: str,
    dtype: torch.dtype = torch.float32,
    pad_mode: str = "reflect",
    channels: int | None = None,
    scale: int = 1,
) -> np.ndarray:
    """One pass of ``model`` over an ``(h, w, C)`` float32 image, clamped to [0, 1].

    The image is padded on the bottom and right to a multiple of ``multiple`` (a spec may ask
    for more than the architecture does) and the output cropped back to ``scale`` times its
    size. With ``channels``, the channels beyond them are a mask input: ``model(image, mask)``.
    The one runner of every network: inference stages and training's evaluation alike.
    """
    h, w = image.shape[:2]
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None]
    tensor = pad_to_multiple(tensor, multiple, pad_mode).to(device, dtype)
    with torch.inference_mode():
        out = model(tensor) if channels is None else model(tensor[:, :channels], tensor[:, channels:].round())
        out = out.float().clamp_(0, 1)
    return out[0, :, : h * scale, : w * scale].permute(1, 2, 0).cpu().numpy()


def best_device() -> str:
    """``$PATINA_DEVICE`` when set (``cpu`` keeps networks off a GPU), else CUDA when present, else the CPU."""
    return os.environ.get("PATINA_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Network:
    """A loaded network with its contract: scale, padding multiple, tiling, precision."""

    spec: ModelSpec
    model: Any  # spandrel ModelDescriptor
    device: str
    dtype: torch.dtype
    facts: dict[str, str]

    @property
    def scale(self) -> int:
        return int(self.model.scale)

    @property
    def halo(self) -> int | None:
        """Context a tile needs (a network with a finite receptive field: patina's U-Nets), else None."""
        return getattr(self.model, "halo", None)

    def _forward(self, image: np.ndarray, channels: int | None = None) -> np.ndarray:
        multiple = max(self.spec.input_multiple, int(getattr(self.model.size_requirements, "multiple_of", 1) or 1))
        pad = getattr(self.model, "pad_mode", "reflect")
        return run_padded(self.model, image, multiple, self.device, self.dtype, pad, channels, self.scale)

    def __call__(self, image: np.ndarray, tile: int = 512, overlap: int = 32) -> np.ndarray:
        """Run on a working image ``(H, W, C)`` float32 in [0, 1]; tiles when the spec allows it."""
        if not self.spec.tile:
            return self._forward(image)
        return blend_tiles(self._forward, image, tile, overlap, self.scale)

    def run_masked(self, stacked: np.ndarray, tile: int = 1024, overlap: int = 64) -> np.ndarray:
        """An inpainting network over ``(H, W, C + 1)``: the image, then the hole mask (1 = fill)."""
        channels = stacked.shape[2] - 1

        def forward(piece: np.ndarray) -> np.ndarray:
            if not piece[..., channels:].any():  # a tile without holes keeps its pixels: no network pass
                return piece[..., :channels]
            return self._forward(piece, channels)

        if not self.spec.tile:
            return forward(stacked)
        return blend_tiles(forward, stacked, tile, overlap, self.scale)


def load_network(spec: ModelSpec, device: str | None = None, precision: str = "auto") -> Network:
    """Load ``spec``'s verified weights through spandrel onto ``device`` (default: CUDA when present).

    ``precision``: ``"auto"`` uses float16 on CUDA for models whose spec allows half precision,
    ``"fp32"`` never does, ``"fp16"``/``"bf16"`` force it on CUDA.
    """
    if spec.architecture == unet.ARCHITECTURE:  # patina's own, trained by `patina train`
        network = unet.read_unet(weights_path(spec), spec.stage)
        descriptor, facts = unet.UNetDescriptor(network, spec.stage), {}
    elif spec.architecture == bopbtl.ARCHITECTURE:  # not in spandrel: written to its checkpoint's layout
        descriptor, facts = bopbtl.ScratchDescriptor(bopbtl.read_scratch_unet(weights_path(spec))), {}
    else:
        spandrel = import_spandrel()
        state, facts = state_dict_for(spec)
        try:
            descriptor = spandrel.ModelLoader().load_from_state_dict(state)
        except spandrel.UnsupportedModelError as exc:
            raise WeightsError(f"{spec.id}: spandrel recognises no architecture in its weights") from exc
    if descriptor.architecture.id.lower() != spec.architecture.lower():
        raise WeightsError(
            f"{spec.id}: weights hold a {descriptor.architecture.id} network, the spec names {spec.architecture}"
        )
    device = device or best_device()
    dtype = torch.float32
    if device.startswith("cuda"):
        wanted = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        if wanted is None and precision == "auto" and spec.half and descriptor.supports_half:
            wanted = torch.float16
        dtype = wanted or torch.float32
    descriptor.to(device).eval()
    if dtype != torch.float32:
        descriptor.model.to(dtype)
    facts = {
        **facts,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "architecture": descriptor.architecture.id,
    }
    return Network(spec, descriptor, device, dtype, facts)
