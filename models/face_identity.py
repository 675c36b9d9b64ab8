"""Is it still the same person? Identity distance and no-reference quality of faces.

The face stage restores a face only where the restored face stays the person in the input
(:mod:`patina.models.learned`, ``FaceRestoreStage``); this module measures that:

- :class:`FaceIdentity`: dlib's face-recognition ResNet (128-d embeddings; the L2 distance of
  two embeddings under 0.6 is dlib's "same person", 99.38% on LFW) with its 5-point landmark
  predictor to align the face it embeds. Both files are Davis King's models as packaged by
  ``face-recognition-models`` (weights verified by sha256 through :mod:`patina.models.weights`);
  dlib itself comes from the ``dlib-bin`` wheel.
- :func:`face_quality`: sharpness and noise of an aligned face's inner region (no reference).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from patina.models.faces import FFHQ_TEMPLATE_512, dlib_model
from patina.models.image import to_uint8

IDENTITY_RESNET = dlib_model(
    "dlib/face-recognition-resnet@1",
    "dlib ResNet-29 metric network",
    "128-d face embedding; the faces stage's identity gate",
    "dlib_face_recognition_resnet_model_v1.dat",  # 22,466,066 bytes
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
)
IDENTITY_LANDMARKS = dlib_model(
    "dlib/shape-predictor-5@1",
    "dlib ensemble of regression trees",
    "5 face landmarks aligning the identity embedding's input",
    "shape_predictor_5_face_landmarks.dat",  # 9,150,489 bytes
    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
)
IDENTITY_WEIGHTS = (IDENTITY_RESNET, IDENTITY_LANDMARKS)

SAME_PERSON = 0.6
"""dlib's decision threshold on the embedding distance."""


def _template_box(side: int) -> tuple[int, int, int, int]:
    """The face's box (left, top, right, bottom) in an FFHQ-aligned crop of ``side`` px."""
    points = FFHQ_TEMPLATE_512 * (side / 512.0)
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    width = x1 - x0
    return round(x0 - 0.45 * width), round(y0 - 0.75 * width), round(x1 + 0.45 * width), round(y1 + 0.45 * width)


class FaceIdentity:
    """Embeds FFHQ-aligned face crops with dlib's face-recognition network."""

    def __init__(self, resnet: Path | None = None, landmarks: Path | None = None) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise RuntimeError(
                "the faces stage measures identity with dlib, which is not installed: pip install dlib-bin"
            ) from exc
        from patina.models.weights import pull

        self._dlib = dlib
        self._shapes = dlib.shape_predictor(str(landmarks or pull(IDENTITY_LANDMARKS)))
        self._net = dlib.face_recognition_model_v1(str(resnet or pull(IDENTITY_RESNET)))

    def embedding(self, aligned: np.ndarray) -> np.ndarray:
        """The 128-d embedding of an FFHQ-aligned face crop (working image, any side)."""
        pixels = np.ascontiguousarray(to_uint8(aligned))
        shape = self._shapes(pixels, self._dlib.rectangle(*_template_box(aligned.shape[0])))
        return np.asarray(self._net.compute_face_descriptor(pixels, shape), np.float32)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Identity distance of two aligned crops (0: same embedding; over :data:`SAME_PERSON`: another person)."""
        return float(np.linalg.norm(self.embedding(a) - self.embedding(b)))


@dataclass(frozen=True)
class FaceQuality:
    """No-reference quality of an aligned face's inner region (eyes to chin), measured at 256 px."""

    sharpness: float  # 90th percentile of the luma's gradient after a 1 px Gaussian: falls with blur, not with grain
    noise: float  # robust sigma (median absolute deviation) of the finest diagonal Haar band: grain, JPEG noise

    def better_than(self, other: FaceQuality) -> bool:
        """Sharper, and not much noisier: restored detail is texture too, so noise may grow by half."""
        return self.sharpness > other.sharpness and self.noise <= 1.5 * other.noise + 0.003


def face_quality(aligned: np.ndarray, side: int = 256) -> FaceQuality:
    """:class:`FaceQuality` of an FFHQ-aligned face crop (working image, any side)."""
    shrink = aligned.shape[0] > side
    face = cv2.resize(aligned, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    luma = cv2.cvtColor(np.clip(face, 0, 1).astype(np.float32), cv2.COLOR_RGB2GRAY)
    inner = luma[side // 4 : side - side // 8, side // 5 : side - side // 5]
    smooth = cv2.GaussianBlur(inner, (0, 0), 1.0)
    gradient = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    h, w = (inner.shape[0] // 2) * 2, (inner.shape[1] // 2) * 2
    q = inner[:h, :w]
    diagonal = (q[0::2, 0::2] - q[0::2, 1::2] - q[1::2, 0::2] + q[1::2, 1::2]) / 2.0
    return FaceQuality(float(np.percentile(gradient, 90)), float(np.median(np.abs(diagonal)) / 0.6745))


@dataclass(frozen=True)
class FaceDecision:
    """What the identity gate chose for one face (strength 0: the input face kept)."""

    strength: float  # blend of the restored face over the input face
    identity_shift: float  # identity distance of the chosen face (kept: of the gentlest blend tried) to the input
    quality_in: FaceQuality
    quality_out: FaceQuality  # of the chosen face (kept: of the gentlest blend tried)

    def record(self) -> dict[str, float]:
        """Flat, rounded, for the stage's decisions."""
        return {
            "strength": round(self.strength, 3),
            "identity_shift": round(self.identity_shift, 3),
            **{f"{k}_in": round(v, 4) for k, v in asdict(self.quality_in).items()},
            **{f"{k}_out": round(v, 4) for k, v in asdict(self.quality_out).items()},
        }


def choose_blend(
    original: np.ndarray,
    restored: np.ndarray,
    identity: FaceIdentity,
    strengths: tuple[float, ...],
    max_identity_shift: float | None,
) -> tuple[np.ndarray, FaceDecision]:
    """The strongest blend of ``restored`` over ``original`` (aligned crops of one size) that keeps the person.

    A blend is taken when its identity distance to the input face is at most ``max_identity_shift``
    and its :func:`face_quality` is better than the input's (sharper, no noisier); the strongest of
    ``strengths`` passing both wins, else the input face is kept. ``max_identity_shift=None`` takes
    the strongest blend ungated (its distance still recorded): the stage may then change who is pictured.
    """
    reference = identity.embedding(original)
    quality_in = face_quality(original)
    decision = FaceDecision(0.0, 0.0, quality_in, quality_in)
    for strength in sorted(strengths, reverse=True):
        blend = (strength * restored + (1.0 - strength) * original).astype(np.float32)
        shift = float(np.linalg.norm(identity.embedding(blend) - reference))
        quality = face_quality(blend)
        if max_identity_shift is None or (shift <= max_identity_shift and quality.better_than(quality_in)):
            return blend, FaceDecision(strength, shift, quality_in, quality)
        decision = FaceDecision(0.0, shift, quality_in, quality)
    return original, decision
