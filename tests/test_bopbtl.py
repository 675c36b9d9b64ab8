"""Bringing-Old-Photos-Back-to-Life's scratch detector by configuration: its architecture in the published
checkpoint's layout (random-init weights saved as the publisher saves them), read out of a release-style
zip through the real weights path, run with its own pre- and post-processing."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from patina.models import bopbtl
from patina.models.registry import entry, implementation_for
from patina.models.spec import ModelSpec
from patina.models.stage import StageInput
from patina.models.weights import WeightsError, pull

MEMBER = "checkpoints/detection/FT_Epoch_latest.pt"


@pytest.fixture(autouse=True)
def weights_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PATINA_WEIGHTS_CACHE", str(tmp_path / "cache"))


def release_zip(tmp_path, state: dict) -> str:
    """A zip laid out as the publisher's global_checkpoints.zip, holding ``state`` as its detector member."""
    checkpoint = tmp_path / "FT_Epoch_latest.pt"
    torch.save(state, checkpoint)
    archive = tmp_path / "global_checkpoints.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(checkpoint, MEMBER)
        handle.writestr("checkpoints/restoration/README", "other models of the release")
    return f"zip://{MEMBER}::file://{archive}"


def spec_for(uri: str) -> ModelSpec:
    published = entry("bopbtl/scratch-detector@1.0").spec
    return replace(published, id="test/scratch-detector@1", weights_uri=uri, sha256=None)


def test_the_catalogue_entry_names_the_release_archive_member_its_licence_and_its_own_stage():
    spec = entry("bopbtl/scratch-detector@1.0").spec
    assert spec.license == "MIT" and spec.weights_uri.startswith(f"zip://{MEMBER}::https://github.com/microsoft/")
    assert spec.architecture == bopbtl.ARCHITECTURE and spec.input_multiple == 16 and len(spec.sha256) == 64
    assert implementation_for(spec).__name__ == "ScratchDetectorStage"
    params = implementation_for(spec).params_type()
    assert params.threshold == 0.4 and params.short_side == 0  # the publisher's threshold, full-size input


def test_the_architecture_has_the_published_checkpoint_layout():
    state = bopbtl.ScratchUNet().state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["first.1.weight"] == (64, 1, 7, 7) and shapes["last.1.weight"] == (1, 64, 3, 3)
    assert shapes["down_sample.0.4.filt"] == (64, 1, 3, 3) and shapes["down_sample.3.1.weight"] == (512, 512, 3, 3)
    assert shapes["down_path.3.block.5.weight"] == (1024, 1024, 3, 3)
    assert shapes["up_path.0.up.2.weight"] == (512, 1024, 3, 3) and shapes["up_path.3.conv_block.block.1.weight"] == (
        64, 128, 3, 3,
    )  # fmt: skip
    assert torch.allclose(state["down_sample.2.4.filt"][0, 0].sum(), torch.tensor(1.0))


def test_published_layout_checkpoint_is_pulled_from_the_archive_and_detects_at_full_size_and_at_256(tmp_path):
    torch.manual_seed(0)
    net = bopbtl.ScratchUNet()
    for module in net.modules():  # random running statistics, so batch norm is not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {f"module.{k}": v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    spec = spec_for(release_zip(tmp_path, {"model_state": state, "epoch": 11}))
    path = pull(spec)
    assert path.name == "FT_Epoch_latest.pt" and path.is_file()  # the member, cached under its own name
    stage_type = implementation_for(spec)
    stage = stage_type(spec, stage_type.params_type())
    image = np.random.default_rng(1).random((40, 56, 3), dtype=np.float32)
    out = stage.process(StageInput(image))
    assert out.mask.shape == (40, 56) and np.array_equal(out.image, image)
    assert out.decisions["architecture"] == bopbtl.ARCHITECTURE
    prob = stage.run(image)[..., 0]
    gray = np.round((image @ np.float32(bopbtl.LUMA_601)) * 255) / 255
    padded = np.pad(gray, ((0, 8), (0, 8)), mode="reflect")  # to a multiple of 16, as the network is run
    with torch.no_grad():
        expected = torch.sigmoid(net.eval()(torch.from_numpy(padded * 2 - 1)[None, None].float()))[0, 0, :40, :56]
    np.testing.assert_allclose(prob, expected.numpy(), atol=1e-4)  # the publisher's luma, scale and sigmoid
    small = stage_type(spec, replace(stage.params, short_side=32, threshold=0.0, dilate=0))
    assert small.run(image).shape == (40, 56, 1) and small.process(StageInput(image)).mask.all()
    tiny = image[:12, :20]  # under the network's smallest input: run on a copy scaled up to it
    assert stage.run(tiny).shape == (12, 20, 1)


def test_another_layout_is_refused_naming_the_file(tmp_path):
    state = {"model_state": {"first.1.weight": torch.zeros(8, 1, 7, 7)}}
    spec = spec_for(release_zip(tmp_path, state))
    stage_type = implementation_for(spec)
    with pytest.raises(WeightsError, match=r"FT_Epoch_latest\.pt: not the published scratch detector's layout"):
        stage_type(spec, stage_type.params_type())
