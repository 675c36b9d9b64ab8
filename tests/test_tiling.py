"""Large images run tile by tile: the same result as whole-image processing, without float copies of it."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from patina.models import synthetic as syn
from patina.models.image import to_transport, to_working
from patina.models.registry import build_stage, default_params
from patina.models.stage import StageInput
from patina.models.tiling import LargeImagePolicy, can_tile, combine_decisions, run_large
from tests.helpers import scene

# Small tiles on a small image: every tile border crosses picture content and specks.
POLICY = LargeImagePolicy(min_pixels=1, tile=24, proxy_pixels=10**9, crop=10**9)


def _damaged(seed=0):
    rng = np.random.default_rng(seed)
    image = syn.dust(scene(90, 110, seed), 40, rng).image
    return to_transport(image)


def _stage(model_id, **params):
    return build_stage(model_id, dataclasses.replace(default_params(model_id), **params))


def test_speck_detection_tiled_equals_whole():
    transport = _damaged()
    stage = _stage("classical/dust-scratch-detector@1")
    whole_input = StageInput(to_working(transport))
    whole = stage.process(StageInput(whole_input.image, analysis=stage.analyze(whole_input)))
    tiled = run_large(stage, transport, None, {}, POLICY)
    assert whole.mask.sum() > 40  # there is something to find, across tile borders
    assert np.array_equal(tiled.mask, whole.mask)
    assert tiled.transport is transport  # the detector changes no pixels: no copy was made
    assert tiled.decisions["damaged_fraction"] == pytest.approx(whole.decisions["damaged_fraction"], abs=1e-6)
    assert tiled.decisions["large_image"]["tiles"] == 4 * 5


def test_inpaint_and_tone_tiled_equal_whole():
    transport = _damaged(1)
    detector = _stage("classical/dust-scratch-detector@1")
    mask = detector.process(StageInput(to_working(transport))).mask
    for model_id, params in (("classical/telea-inpaint@1", {}), ("classical/tone@3", {"cast_min_deviation": 0.0})):
        stage = _stage(model_id, **params)  # tone: always correct the cast, so tiles must share its gains
        whole = stage.process(StageInput(to_working(transport), mask, {"assess": {"kind": "color"}}))
        tiled = run_large(stage, transport, mask, {"assess": {"kind": "color"}}, POLICY)
        assert tiled.applied and np.abs(tiled.transport.astype(int) - to_transport(whole.image).astype(int)).max() <= 1
    assert tiled.decisions["route"] == "color-cast"


def test_measuring_stage_runs_on_a_proxy_and_keeps_pixels():
    transport = _damaged(2)
    stage = _stage("classical/assess@2")
    assert can_tile(stage)
    result = run_large(stage, transport, None, {}, LargeImagePolicy(min_pixels=1, proxy_pixels=2000))
    assert result.transport is transport and result.decisions["kind"] == "color"
    assert result.decisions["large_image"]["sample"].startswith("proxy ")
    width, height = map(int, result.decisions["large_image"]["sample"].split()[1].split("x"))
    assert width * height <= 2000


def test_combine_decisions_sums_counts_and_weights_measures():
    merged = combine_decisions([{"n": 2, "f": 0.5, "k": "a"}, {"n": 3, "f": 0.0}], [1, 3])
    assert merged == {"n": 5, "f": 0.125, "k": "a"}


def test_pipeline_tiles_large_images_with_the_same_output(ray_local, tmp_path):
    from patina.actors.pipeline import run_pipeline
    from patina.flows.config import parse_config
    from patina.manifests.provenance import read_provenance
    from patina.manifests.readers import read_manifest
    from tests.conftest import make_collection

    manifest = make_collection(tmp_path / "c", count=2, bad=False)
    items = read_manifest(str(manifest))
    outputs = {}
    for name, large in (("whole", {}), ("tiled", {"min_pixels": 100, "tile": 64, "proxy_pixels": 10**7})):
        out = tmp_path / name
        config = parse_config({"large_images": large, "output": {"format": "png"}})
        assert run_pipeline(items, config.run_settings(name, str(out))).status == "completed"
        outputs[name] = {p.name: to_working(np.asarray(Image.open(p))) for p in out.glob("*.png")}
        rows = read_provenance(str(out)).to_pylist()
        tiled_rows = [r for r in rows if "large_image" in r["decisions"]]
        assert len(tiled_rows) == (0 if name == "whole" else 2 * 4)  # every stage of every item
    for key, image in outputs["whole"].items():
        assert np.abs(outputs["tiled"][key] - image).max() <= 2 / 255
