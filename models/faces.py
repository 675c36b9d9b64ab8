"""Faces: detection with 5 landmarks, alignment to the FFHQ template, feathered paste-back.

Pure functions over working images (see :mod:`patina.models.image`). The detector is YuNet
as compiled into libfacedetection (the ``yuface`` wheel, BSD-3; its weights are built in):
it returns a box, a confidence and five landmarks (eyes, nose tip, mouth corners) per face.
Alignment is the similarity transform that maps those landmarks onto the 5-point template
of FFHQ-aligned 512 px faces (the one GFPGAN, CodeFormer and RestoreFormer were trained on).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import cv2
import numpy as np

from patina.models.image import check_image, to_uint8

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


def detector_version() -> str:
    try:
        return f"yunet (libfacedetection, yuface {version('yuface')})"
    except PackageNotFoundError:
        return "yunet (yuface not installed)"


def detect_faces(image: np.ndarray, min_confidence: float = 0.7) -> list[Face]:
    """Faces in a working image, most confident first."""
    check_image(image)
    try:
        import yuface
    except ImportError as exc:
        raise RuntimeError("face detection needs the 'yuface' package (pip install yuface)") from exc
    h, w = image.shape[:2]
    factor = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = (
        image
        if factor == 1.0
        else cv2.resize(image, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    )
    bgr = np.ascontiguousarray(to_uint8(small)[..., ::-1])
    confs, boxes, landmarks = yuface.detect(bgr, conf=min_confidence)
    faces = [
        Face(
            box=tuple(float(v) / factor for v in box),
            landmarks=np.asarray(points, np.float32).reshape(5, 2) / factor,
            confidence=float(conf) / 100.0,
        )
        for conf, box, points in zip(confs, boxes, landmarks, strict=True)
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
