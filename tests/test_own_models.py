"""patina's own U-Nets: the shipped inpainter and colorizer, their colour bins, and how the network stages run them."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from patina.models import registry
from patina.models import synthetic as syn
from patina.models.learned import ColorizeStage, NetworkInpaintStage
from patina.models.metrics import colourfulness
from patina.models.networks import load_network
from patina.models.spec import ModelSpec
from patina.models.stage import StageInput
from patina.models.training_tasks import TASKS
from patina.models.unet import AB_BINS, AB_CENTRES, UNet, UNetConfig, ab_bin_targets, ab_from_logits, config_metadata
from patina.models.weights import WeightsError
from tests.helpers import scene


def unet_spec(folder, stage: str, channels: tuple[int, int], width: int = 4, depth: int = 2) -> ModelSpec:
    torch.manual_seed(0)
    config = UNetConfig(*channels, width=width, depth=depth)
    path = folder / f"{stage}.safetensors"
    save_file({k: v.contiguous() for k, v in UNet(config).state_dict().items()}, str(path), config_metadata(config))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ModelSpec(f"test/{stage}-unet@1", stage, "PatinaUNet", "test", "random init", str(path), sha)


def test_colour_bins_encode_and_decode_a_b_values():
    ab = torch.tensor(np.random.default_rng(0).uniform(-100, 100, (2, 2, 5, 7)), dtype=torch.float32)
    soft = ab_bin_targets(ab)
    assert soft.shape == (2, AB_BINS, 5, 7)
    torch.testing.assert_close(soft.sum(1), torch.ones(2, 5, 7))
    # the mean of the soft targets gives the colour back (within a fraction of a 16-unit bin)
    assert (ab_from_logits(torch.log(soft + 1e-12), temperature=1.0) - ab).abs().max() < 1.0
    peaked = torch.full((1, AB_BINS, 1, 1), -50.0)
    peaked[0, 3 * len(AB_CENTRES) + 10] = 50.0  # a* bin 3, b* bin 10
    np.testing.assert_allclose(ab_from_logits(peaked).flatten().tolist(), [AB_CENTRES[3], AB_CENTRES[10]], atol=1e-3)


def test_rebalancing_weighs_rare_colours_up_and_leaves_one_colour_alone():
    from patina.models.training import TrainConfig

    plain, rebalanced = TrainConfig(rebalance=0.0), TrainConfig(rebalance=1.0)
    loss = TASKS["colorize"].loss
    target = torch.full((1, 2, 10, 10), 0.5)  # grey everywhere ...
    logits = torch.zeros(1, AB_BINS, 10, 10)
    assert torch.isclose(loss(logits, target, target, plain), loss(logits, target, target, rebalanced))
    target[:, 0, :1] = 0.5 + 60 / 256  # ... but for one red row
    grey_bins = ab_bin_targets(torch.zeros(1, 2, 1, 1))
    logits = torch.log(grey_bins + 1e-6).expand(1, AB_BINS, 10, 10).clone()  # sure of grey, wrong on red
    assert loss(logits, target, target, rebalanced) > 2 * loss(logits, target, target, plain)


def test_a_u_net_serves_only_the_stage_its_channels_fit(tmp_path):
    spec = unet_spec(tmp_path, "inpaint", (3, 1))  # a detector's channels
    with pytest.raises(ValueError, match="3 input and 1 output channels cannot serve stage 'inpaint'"):
        load_network(spec)
    tampered = ModelSpec(**{**spec.__dict__, "sha256": "0" * 64})
    with pytest.raises(WeightsError, match="sha256"):
        load_network(tampered)


def test_inpainting_passes_only_tiles_with_holes_through_the_network(tmp_path):
    params = NetworkInpaintStage.params_type(tile=32, tile_overlap=8)
    stage = NetworkInpaintStage(unet_spec(tmp_path, "inpaint", (4, 3)), params)
    calls = []
    forward = stage.network.model.model.forward
    stage.network.model.model.forward = lambda *t: calls.append(t[0].shape) or forward(*t)
    picture = scene(96, 96, seed=1)
    stage.process(StageInput(picture, mask=np.ones((96, 96), bool)))
    every_tile, calls[:] = len(calls), []
    mask = np.zeros((96, 96), bool)
    mask[5:9, 4:20] = True  # a hole in one corner tile
    out = stage.process(StageInput(picture, mask=mask))
    assert out.applied and out.decisions["filled_pixels"] == mask.sum()
    assert every_tile >= 9 and 1 <= len(calls) <= 2  # only the tiles over the hole
    np.testing.assert_array_equal(out.image[~mask], picture[~mask])
    assert not np.allclose(out.image[mask], picture[mask])


def test_the_shipped_inpainter_fills_a_scratch_from_its_surroundings():
    model_id = registry.DEFAULT_MODELS["inpaint"]
    assert model_id == "patina/inpaint-unet@1"
    stage = registry.build_stage(model_id, registry.default_params(model_id))
    clean = scene(96, 128, seed=4)
    damaged = syn.scratches(clean, 2, np.random.default_rng(3), bright=True)
    out = stage.process(StageInput(damaged.image, mask=damaged.mask))
    hole = damaged.mask
    np.testing.assert_array_equal(out.image[~hole], damaged.image[~hole])
    before = np.abs(damaged.image[hole] - clean[hole]).mean()
    after = np.abs(out.image[hole] - clean[hole]).mean()
    assert after < before / 3, (before, after)
    assert out.decisions["architecture"] == "PatinaUNet"


def test_the_shipped_colorizer_colours_a_monochrome_print_and_keeps_its_lightness():
    model_id = registry.DEFAULT_MODELS["colorize"]
    assert model_id == "patina/colorize-unet@1" and "colorize" not in registry.DEFAULT_STAGES
    stage = registry.build_stage(model_id, registry.default_params(model_id))
    gray = np.repeat(syn.grayscale(scene(80, 96, seed=2)).image[..., :1], 3, axis=2)
    out = stage.process(StageInput(gray, decisions={"assess": {"kind": "grayscale"}}))
    assert out.applied and out.image.shape == gray.shape and colourfulness(out.image) > 3.0
    lightness = [cv2.cvtColor(x, cv2.COLOR_RGB2LAB)[..., 0] for x in (gray, out.image)]
    assert np.abs(lightness[0] - lightness[1]).mean() < 1.5  # L* kept (0..100; up to gamut clipping)
    again = stage.process(StageInput(gray, decisions={"assess": {"kind": "grayscale"}}))
    np.testing.assert_array_equal(again.image, out.image)  # deterministic
    assert not stage.process(StageInput(scene(40, 40), decisions={"assess": {"kind": "color"}})).applied


def test_the_colorize_stage_needs_asking_for():
    from patina.flows.config import PipelineConfig

    assert "colorize" not in PipelineConfig().stages
    assert PipelineConfig(stages=["assess", "colorize"]).run_settings("r", "/tmp/o").stages[-1].model_id == (
        "patina/colorize-unet@1"
    )


def test_colorize_stage_decodes_a_b_bins_of_a_random_u_net(tmp_path):
    stage = ColorizeStage(unet_spec(tmp_path, "colorize", (1, AB_BINS), width=4, depth=3), ColorizeStage.params_type())
    gray = np.repeat(scene(40, 36, seed=5)[..., :1], 3, axis=2)
    out = stage.process(StageInput(gray, decisions={"assess": {"kind": "sepia"}}))
    assert out.applied and out.image.shape == gray.shape and out.decisions["mean_chroma"] > 0


def test_network_tiles_default_by_device():
    from patina.models.learned import TILE_CPU, TILE_CUDA, tile_side

    assert (tile_side(None, "cpu"), tile_side(None, "cuda:1"), tile_side(300, "cuda")) == (TILE_CPU, TILE_CUDA, 300)


@pytest.mark.parametrize("num_cpus", [0.25, 2.0])
def test_a_cpu_actor_gives_its_networks_the_cpus_it_was_given(num_cpus, monkeypatch):
    import dataclasses

    from patina.actors.stage_actor import StageActor
    from patina.flows.config import PipelineConfig
    from patina.models.networks import best_device

    monkeypatch.setenv("PATINA_DEVICE", "cpu")
    assert best_device() == "cpu"
    conf = PipelineConfig(stages=["detect_damage"]).stage_settings("detect_damage")
    conf = dataclasses.replace(conf, resources=dataclasses.replace(conf.resources, num_gpus=0.0, num_cpus=num_cpus))
    before = torch.get_num_threads()
    try:
        actor = StageActor((conf,), 1)
        assert actor.runners[0].stage.device == "cpu"
        assert torch.get_num_threads() == max(1, int(num_cpus))
    finally:
        torch.set_num_threads(before)
