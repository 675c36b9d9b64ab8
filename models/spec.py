"""Model identity: every operation patina applies has a :class:`ModelSpec`.

An id reads ``family/name@version`` (for example ``classical/telea-inpaint@1``). Classical,
parameter-free operations have no weights. Learned models carry the sha256 of their weights
file and are refused when the bytes do not match; a catalogued checkpoint whose publisher
gives no checksum has ``sha256=None`` until ``patina models pull`` pins it (see
:mod:`patina.models.weights`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODEL_ID_PATTERN = re.compile(
    r"^(?P<family>[a-z0-9][a-z0-9_.-]*)/(?P<name>[a-z0-9][a-z0-9_.-]*)@(?P<version>[A-Za-z0-9][A-Za-z0-9_.+-]*)$"
)


def parse_model_id(model_id: str) -> tuple[str, str, str]:
    """Split ``family/name@version``; raise ``ValueError`` naming the id when malformed."""
    match = MODEL_ID_PATTERN.match(model_id)
    if match is None:
        raise ValueError(f"model id {model_id!r} is not of the form 'family/name@version'")
    return match["family"], match["name"], match["version"]


@dataclass(frozen=True)
class ModelSpec:
    """What identifies one model (or classical operation) in provenance and the registry."""

    id: str
    stage: str
    architecture: str
    license: str
    description: str
    weights_uri: str | None = None  # fsspec URI, local path, or package:MODULE/PATH (see weights.py)
    sha256: str | None = None
    source_url: str | None = None
    converter: str | None = None  # how the weights file becomes a state dict (e.g. "ncnn"); None: read as is
    # Input contract and capabilities (used by the model runner and `patina models list`):
    scale: int = 1  # output size / input size
    tile: bool = True  # may run tile by tile (fully convolutional / windowed)
    half: bool = False  # safe in float16 / bfloat16 on CUDA
    input_multiple: int = 1  # inputs are padded to a multiple of this
    input_size: int | None = None  # fixed square input (face models: 512), else any size
    # Peak resident memory an actor needs above its baseline to run this model on a 1536x1024 image,
    # measured by benchmarks/actor_memory.py; 0: not measured (a pool then assumes a default).
    memory_mb: int = 0

    def __post_init__(self) -> None:
        parse_model_id(self.id)
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"model {self.id}: sha256 must be 64 lowercase hex digits")
