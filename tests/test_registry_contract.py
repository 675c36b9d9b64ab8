"""Every model the registry knows keeps the stage contract, run with random-init weights of its real architecture.

A new entry (built-in, packaged catalogue) whose architecture has no random-init builder here
fails this test: it must be added, so that no registered model goes untested.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from patina.manifests.provenance import canonical_json
from patina.models import bopbtl, registry
from patina.models.spec import ModelSpec
from patina.models.stage import StageInput
from patina.models.torch_compat import import_spandrel
from patina.models.unet import STAGE_CHANNELS, UNet, UNetConfig, config_metadata

import_spandrel()  # torchvision shim first: spandrel's architectures import torchvision

from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.LaMa import LaMa  # noqa: E402
from spandrel.architectures.SCUNet import SCUNet  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402
from spandrel_extra_arches.architectures.DDColor import DDColor  # noqa: E402

from tests.test_models import FACE_MODELS  # noqa: E402


def _unet(spec: ModelSpec) -> UNet:
    channels = STAGE_CHANNELS[spec.stage]
    return UNet(UNetConfig(channels[0], channels[1], width=8, depth=3))


RANDOM_INIT = {  # architecture -> a small random-init network fitting the spec (its scale, its stage)
    "PatinaUNet": _unet,
    "ESRGAN": lambda spec: ESRGAN(num_filters=8, num_blocks=1, scale=spec.scale),
    "SwinIR": lambda spec: SwinIR(
        embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=spec.scale, upsampler="pixelshuffle"
    ),
    "SCUNet": lambda spec: SCUNet(config=[1] * 7, dim=64),
    "LaMa": lambda spec: LaMa(in_nc=4),
    **{name: (lambda spec, build=build: build()) for name, build in FACE_MODELS},  # GFPGAN, CodeFormer, RestoreFormer
    "BOPBTLScratchUNet": lambda spec: bopbtl.ScratchUNet(),  # its loader takes the published layout only
    "DDColor": lambda spec: DDColor(
        encoder_name="convnext-t", input_size=(64, 64), nf=512, num_queries=16, dec_layers=1, num_output_channels=2
    ),
}
HEAVY = {"GFPGAN", "CodeFormer", "RestoreFormer", "DDColor"}  # seconds to build each: run with the slow tests


def _random_weights(spec: ModelSpec, folder: Path) -> ModelSpec:
    """``spec`` pointing at random-init weights of its architecture (same stage, scale and contract)."""
    torch.manual_seed(0)
    network = RANDOM_INIT[spec.architecture](spec)
    metadata = config_metadata(network.config) if isinstance(network, UNet) else None
    path = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path), metadata=metadata)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return dataclasses.replace(spec, weights_uri=str(path), sha256=sha, converter=None)


def _cases():
    for found in registry.entries():
        spec = found.spec
        marks = [pytest.mark.slow] if spec.architecture in HEAVY else []
        if spec.stage == "faces":
            missing = importlib.util.find_spec("dlib") is None
            marks.append(pytest.mark.skipif(missing, reason="the identity gate needs patina[faces]"))
        yield pytest.param(spec.id, marks=marks, id=spec.id)


def test_every_architecture_of_the_registry_has_a_random_init_builder():
    missing = {e.spec.id: e.spec.architecture for e in registry.entries()}
    missing = {k: v for k, v in missing.items() if v != "classical" and v not in RANDOM_INIT}
    assert not missing, f"add random-init builders for {missing}"


@pytest.mark.parametrize("model_id", list(_cases()))
def test_every_registered_model_keeps_the_stage_contract(tmp_path, model_id):
    found = registry.entry(model_id)
    spec = found.spec
    if spec.architecture != "classical":
        spec = _random_weights(spec, tmp_path)
    params = found.implementation.params_type()
    stage = found.implementation(spec, params)
    rng = np.random.default_rng(0)
    picture = rng.random((40, 36, 3), dtype=np.float32)
    mask = np.zeros((40, 36), bool)
    mask[10:14, 4:30] = True
    decisions = {"assess": {"kind": "grayscale", "noise_sigma": 0.01}}
    out = stage.process_batch([StageInput(picture, mask if stage.uses_mask else None, decisions)])[0]

    scale = getattr(params, "scale", 1.0) if spec.stage == "enhance" else 1.0
    assert out.image.dtype == np.float32 and out.image.ndim == 3 and out.image.shape[2] == 3
    assert out.image.shape[:2] == (round(40 * scale), round(36 * scale))
    assert np.isfinite(out.image).all() and out.image.min() >= 0.0 and out.image.max() <= 1.0
    assert out.mask is None or (out.mask.dtype == bool and out.mask.shape == out.image.shape[:2])
    assert canonical_json(dict(out.decisions))  # what provenance records: JSON-able
    if not out.applied:
        assert out.decisions.get("reason"), "a stage that does not act says why"
    elif spec.architecture != "classical":  # a network stage records what ran and where
        assert {"device", "dtype", "architecture"} <= set(out.decisions)
    assert stage.device == "cpu"  # PATINA_DEVICE or no GPU here: tests never reach for one
