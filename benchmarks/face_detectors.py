"""Face detectors on the aged sample collection: faces found, false detections and speed.

YuNet through both of patina's backends (libfacedetection's ``yuface`` where its wheel installs,
OpenCV's ``FaceDetectorYN`` with the OpenCV Zoo ONNX, downloaded by ``patina models pull``-style
verified fetch on first use) against MTCNN (facenet-pytorch), side by side in one run.

    pip install tqdm && pip install --no-deps facenet-pytorch   # its pins (torch<2.3) do not fit torch 2.13
    python benchmarks/face_detectors.py

The expected faces per sample were counted by eye (``EXPECTED``); a detection counts as found
up to that count, detections beyond it (or on a sample without faces) as false.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from patina.models.faces import BACKENDS, detect_faces
from patina.models.weights import WeightsError

SAMPLES = Path(__file__).resolve().parent.parent / "examples" / "collection"
EXPECTED = {
    "astronaut": 1,
    "woman-red-hat": 1,
    "woman-standing": 1,
    "statue": 1,
    "girl-face-paint": 1,
    "beach-couple": 2,
}


def batched_nms(boxes, scores, idxs, threshold):
    """torchvision's batched_nms in plain torch (its compiled operator is missing on CPU torch here)."""
    keep = []
    for value in idxs.unique():
        chosen = (idxs == value).nonzero().flatten()
        order = chosen[scores[chosen].argsort(descending=True)]
        while len(order):
            best, order = order[0], order[1:]
            keep.append(int(best))
            if not len(order):
                break
            b, rest = boxes[best], boxes[order]
            w = (torch.minimum(b[2], rest[:, 2]) - torch.maximum(b[0], rest[:, 0])).clamp(min=0)
            h = (torch.minimum(b[3], rest[:, 3]) - torch.maximum(b[1], rest[:, 1])).clamp(min=0)
            inter = w * h
            union = (b[2] - b[0]) * (b[3] - b[1]) + (rest[:, 2] - rest[:, 0]) * (rest[:, 3] - rest[:, 1]) - inter
            order = order[inter / union <= threshold]
    return torch.tensor(sorted(keep), dtype=torch.long)


def mtcnn_detector():
    from patina.models.torch_compat import import_torchvision

    import_torchvision()
    from facenet_pytorch import MTCNN
    from facenet_pytorch.models.utils import detect_face

    detect_face.batched_nms = batched_nms
    mtcnn = MTCNN(keep_all=True, device="cpu")

    def detect(image: np.ndarray) -> int:
        boxes, probs = mtcnn.detect(Image.fromarray((image * 255).astype(np.uint8)))
        return 0 if boxes is None else int((probs >= 0.9).sum())

    return detect


def score(name, detect, images) -> None:
    found = false = 0
    start = time.perf_counter()
    counts = {}
    for item, image in images.items():
        n = detect(image)
        counts[item] = n
        expected = EXPECTED.get(item, 0)
        found += min(n, expected)
        false += max(0, n - expected)
    elapsed = (time.perf_counter() - start) / len(images) * 1000
    total = sum(EXPECTED.values())
    print(f"{name:8} found {found}/{total}  false {false}  {elapsed:6.1f} ms/image  {counts}")


def main() -> None:
    images = {p.stem: np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in sorted(SAMPLES.glob("*.jpg"))}
    torch.set_num_threads(2)
    for backend in BACKENDS:
        try:
            detect_faces(next(iter(images.values())), 0.7, backend=backend)  # warm-up (and the ONNX download)
        except (RuntimeError, WeightsError) as exc:
            print(f"{backend:8} not measured: {exc}")
            continue
        score(backend, lambda im, b=backend: len(detect_faces(im, 0.7, backend=b)), images)
    try:
        detect = mtcnn_detector()
    except ImportError as exc:
        print(f"mtcnn    not measured: {exc}")
        return
    detect(next(iter(images.values())))  # warm-up
    score("mtcnn", detect, images)


if __name__ == "__main__":
    main()
