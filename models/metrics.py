"""Image quality metrics shared by training evaluation and the quality benchmark.

PSNR and SSIM (whole image, or restricted to a region such as the filled holes), pixel
precision/recall of masks, and for colorization the a*b* error and the Hasler-Suesstrunk
colourfulness. Images are working float images in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

from patina.models.image import lab_ab


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR over the channels (over the pixels of ``region`` when given), images in [0, 1]."""
    diff = (a.astype(np.float64) - b) ** 2
    mse = float(diff[region].mean()) if region is not None else float(diff.mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of one channel (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03)."""
    x, y = x.astype(np.float64), y.astype(np.float64)

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean SSIM of the channels, over the pixels of ``region`` when given."""
    maps = [ssim_map(a[..., c], b[..., c]) for c in range(a.shape[2])]
    return float(np.mean([m[region].mean() if region is not None else m.mean() for m in maps]))


def mask_metrics(found: np.ndarray, truth: np.ndarray, tolerance: int = 0) -> dict[str, float]:
    """Pixel precision, recall, F1 and IoU of a mask; with ``tolerance``, precision and recall count a
    pixel within that many px of the other mask as matched (IoU stays strict)."""
    tp = float((found & truth).sum())
    hit_found, hit_truth = tp, tp
    if tolerance:
        kernel = np.ones((2 * tolerance + 1,) * 2, np.uint8)
        hit_found = float((found & cv2.dilate(truth.astype(np.uint8), kernel).astype(bool)).sum())
        hit_truth = float((truth & cv2.dilate(found.astype(np.uint8), kernel).astype(bool)).sum())
    precision = hit_found / max(float(found.sum()), 1.0)
    recall = hit_truth / max(float(truth.sum()), 1.0)
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "iou": tp / max(float((found | truth).sum()), 1.0),
    }


def ab_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean a*b* distance between two RGB images (colour error with lightness left out)."""
    return float(np.linalg.norm(lab_ab(a) - lab_ab(b), axis=2).mean())


def colourfulness(image: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness M (2003) on 0..255 RGB: 0 for grey, about 33 'moderately',
    59 'quite', 82 'highly colourful'."""
    rgb = image.astype(np.float64) * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
