"""Face detection in thermal frames: a HOG+SVM detector trained on FLIR Lepton frames (``chips-lepton``).

The detector was trained by ``scripts/train_thermal_detector.py`` on colour-mapped 160x120 Lepton frames, so it
sees a temperature map the same way: rendered with an ironbow-like palette, then upsampled ``UPSAMPLE`` times
(the Lepton faces are 8-35 px wide, too small for HOG cells at native size).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ModelError
from ..models import PACKAGE_DATA, verified

MODEL_PATH = PACKAGE_DATA / "thermal" / "thermal_face_hog.svm"
MODEL_SHA256 = "e5b1a6b2cd2f1f04d8e61b2da4f6de9e8e8c4f8c66ac9bdb2e0b8e1a1b7f1a30"
UPSAMPLE = 3
"""Training and detection both work on frames scaled by this factor from a 160-px-wide reference."""
REFERENCE_WIDTH = 160


def render(temperature: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Render a temperature map (°C) as an RGB uint8 image with the 'inferno' palette (close to FLIR ironbow).

    The range defaults to the 1st-99.5th percentiles, like a camera's automatic span.

    >>> render(np.array([[20.0, 30.0], [25.0, 36.0]])).shape
    (2, 2, 3)
    """
    t = np.asarray(temperature, dtype=np.float32)
    finite = t[np.isfinite(t)]
    if lo is None or hi is None:
        p_lo, p_hi = (np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0))
        lo = p_lo if lo is None else lo
        hi = p_hi if hi is None else hi
    scaled = np.clip((np.nan_to_num(t, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    gray = (scaled * 255).astype(np.uint8)
    bgr = cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def prepare(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale an RGB frame to the detector's working resolution; returns the image and the scale applied."""
    scale = UPSAMPLE * REFERENCE_WIDTH / rgb.shape[1]
    # Frames larger than the Lepton reference are scaled so faces keep roughly the sizes seen in training,
    # but never shrunk below native resolution (that would lose the small faces at a distance).
    scale = max(scale, 1.0)
    if scale == 1.0:
        return np.ascontiguousarray(rgb), 1.0
    out = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(out), scale


@lru_cache(maxsize=2)
def _load(path: str, sha256: str) -> Any:
    import dlib

    verified(Path(path), sha256, "thermal_face_hog")
    try:
        return dlib.fhog_object_detector(path)
    except RuntimeError as err:  # a corrupt file that passed the digest cannot happen, but dlib errors are vague
        raise ModelError(f"cannot load detector: {err}", source=path) from err


class ThermalFaceDetector:
    """Finds faces in a thermal frame (a temperature map in °C, or an already colour-mapped RGB image).

    >>> det = ThermalFaceDetector()                       # doctest: +SKIP
    >>> boxes, scores = det.detect(frame.temperature)     # doctest: +SKIP
    >>> boxes.shape                                       # doctest: +SKIP
    (2, 4)

    Boxes are xyxy floats in the input's pixel coordinates.
    """

    def __init__(self, model_path: Path = MODEL_PATH, sha256: str = MODEL_SHA256, threshold: float = 0.0,
                 extra_upsample: int = 0) -> None:
        self.model_path = Path(model_path)
        self.sha256 = sha256
        self.threshold = threshold
        self.extra_upsample = extra_upsample

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(boxes, scores)``: (N, 4) xyxy float32 boxes and (N,) SVM scores, best first."""
        import dlib

        rgb = render(image) if image.ndim == 2 else np.asarray(image, dtype=np.uint8)
        big, scale = prepare(rgb)
        detector = _load(str(self.model_path), self.sha256)
        rects, scores, _ = dlib.fhog_object_detector.run_multiple(
            [detector], big, upsample_num_times=self.extra_upsample, adjust_threshold=self.threshold)
        if not len(rects):
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32) / scale
        h, w = rgb.shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        order = np.argsort(-np.asarray(scores))
        return boxes[order], np.asarray(scores, np.float32)[order]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_counts(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int]:
    """Greedy one-to-one matching at IoU >= ``threshold``; returns (true positives, false positives, misses).

    ``pred`` must be sorted best first.

    >>> match_counts(np.array([[0, 0, 10, 10]]), np.array([[1, 1, 10, 10]]))
    (1, 0, 0)
    """
    if len(pred) == 0 or len(truth) == 0:
        return 0, len(pred), len(truth)
    overlaps = iou(pred, truth)
    used = np.zeros(len(truth), bool)
    tp = 0
    for i in range(len(pred)):
        cand = np.where(~used & (overlaps[i] >= threshold))[0]
        if cand.size:
            used[cand[np.argmax(overlaps[i, cand])]] = True
            tp += 1
    return tp, len(pred) - tp, len(truth) - tp
