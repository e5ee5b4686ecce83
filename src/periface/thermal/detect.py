"""Face detection in thermal frames: HOG features and a two-stage cascade trained on FLIR Lepton frames.

dlib's HOG trainer could not learn these faces (8-35 px wide: too few 8-px cells), so the detector uses
OpenCV's HOG with 4-px cells on a 24x32 window and scans scales itself. It works on the luminance of an image:
a temperature map is stretched white-hot; colour-mapped training frames are converted to grey.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError
from ..models import PACKAGE_DATA, verified

MODEL_PATH = PACKAGE_DATA / "thermal" / "thermal_face_hog.npz"
MODEL_SHA256 = "4ba4d49aadcc455fef3765757159c124a82929725d2ef2e444196008842e74f4"
WINDOW = (24, 32)
"""HOG window (width, height): faces are scaled to this, the Lepton training faces' median aspect (0.77)."""
MIN_FACE = 10
"""Smallest face width scanned (pixels): below it there is too little structure to find, or to measure."""
SCALE_STEP = 1.2


def _hog() -> cv2.HOGDescriptor:
    return cv2.HOGDescriptor(WINDOW, (8, 8), (4, 4), (4, 4), 9)


def render(temperature: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Render a temperature map (°C) as an RGB uint8 image with the 'inferno' palette (close to FLIR ironbow).

    The range defaults to the 1st-99.5th percentiles, like a camera's automatic span.

    >>> render(np.array([[20.0, 30.0], [25.0, 36.0]])).shape
    (2, 2, 3)
    """
    gray = to_gray(temperature, lo, hi)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def to_gray(image: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """The detector's input: a temperature map stretched to 0-255 (white hot), or an RGB image's luminance."""
    a = np.asarray(image)
    if a.ndim == 3:
        return cv2.cvtColor(a.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    t = a.astype(np.float32)
    finite = t[np.isfinite(t)]
    p_lo, p_hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
    lo = p_lo if lo is None else lo
    hi = p_hi if hi is None else hi
    scaled = np.clip((np.nan_to_num(t, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    return (scaled * 255).astype(np.uint8)


def face_widths(shape: tuple[int, int]) -> list[float]:
    """Face widths (pixels) scanned in a frame of this shape: MIN_FACE up to a face filling the frame."""
    top = min(shape[0] / WINDOW[1] * WINDOW[0], shape[1])
    out, w = [], float(MIN_FACE)
    while w <= top:
        out.append(w)
        w *= SCALE_STEP
    return out


def _resized(gray: np.ndarray, width: float) -> tuple[np.ndarray, float]:
    f = WINDOW[0] / width
    return cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR), f


def scan(gray: np.ndarray, width: float, stride: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """HOG features of every window for faces ``width`` px wide; returns (features, xyxy boxes in ``gray``)."""
    small, f = _resized(gray, width)
    h, w = small.shape
    size = _hog().getDescriptorSize()
    if h < WINDOW[1] or w < WINDOW[0]:
        return np.zeros((0, size), np.float32), np.zeros((0, 4))
    feats = _hog().compute(small, (stride, stride)).reshape(-1, size)
    xs = np.arange(0, w - WINDOW[0] + 1, stride)
    ys = np.arange(0, h - WINDOW[1] + 1, stride)
    gx, gy = np.meshgrid(xs, ys)  # OpenCV walks windows row by row
    boxes = np.column_stack([gx.ravel(), gy.ravel(), gx.ravel() + WINDOW[0], gy.ravel() + WINDOW[1]]) / f
    return feats, boxes[: len(feats)]


def crop_features(gray: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """HOG features of the window centred on ``box``, computed exactly as :func:`scan` computes them.

    Features of an isolated crop differ from in-frame windows at the crop's border (no context for the
    gradients); a classifier would learn that difference instead of faces. None if the window leaves the frame.
    """
    x1, y1, x2, y2 = box
    small, f = _resized(gray, x2 - x1)
    h, w = small.shape
    x = int(round(x1 * f))
    y = int(round(((y1 + y2) / 2) * f - WINDOW[1] / 2))
    if x < 0 or y < 0 or x + WINDOW[0] > w or y + WINDOW[1] > h:
        return None
    return _hog().compute(small, (4, 4), (0, 0), [(x, y)]).ravel()


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[iou(boxes[i][None], boxes[rest])[0] < threshold]
    return np.array(keep, int)


@dataclass(frozen=True)
class Cascade:
    """Stage 1: a linear SVM on HOG (cheap, keeps ~90 % of faces). Stage 2: boosted trees on the survivors.

    The trees are stored as flat node arrays (no pickle), evaluated here with numpy.
    """

    weights: np.ndarray
    bias: float
    stage1: float
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    baseline: float
    stage2: float

    def linear(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights + self.bias

    def trees(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of 'face' from the boosted trees."""
        out = np.full(len(x), self.baseline, np.float64)
        rows = np.arange(len(x))
        for root in self.roots:
            node = np.full(len(x), root)
            active = ~self.leaf[node]
            while active.any():
                n = node[active]
                go_left = x[rows[active], self.feature[n]] <= self.threshold[n]
                node[active] = np.where(go_left, self.left[n], self.right[n])
                active = ~self.leaf[node]
            out += self.value[node]
        return out


CASCADE_FIELDS = tuple(Cascade.__dataclass_fields__)


@lru_cache(maxsize=2)
def _load(path: str, sha256: str) -> Cascade:
    verified(Path(path), sha256, "thermal_face_hog")
    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {k: z[k] for k in CASCADE_FIELDS}
    except (KeyError, ValueError, OSError) as err:
        raise ModelError(f"cannot load thermal detector: {err}", source=path) from err
    for k in ("bias", "stage1", "baseline", "stage2"):
        parts[k] = float(parts[k])
    return Cascade(**parts)


class ThermalFaceDetector:
    """Finds faces in a thermal frame (a temperature map in °C, or an already colour-mapped RGB image).

    HOG features scanned over scales, scored by a two-stage cascade trained by
    ``scripts/train_thermal_detector.py``.

    >>> det = ThermalFaceDetector()                       # doctest: +SKIP
    >>> boxes, scores = det.detect(frame.temperature)     # doctest: +SKIP

    Boxes are xyxy floats in the input's pixel coordinates, best first; scores are log-odds.
    """

    def __init__(self, model_path: Path = MODEL_PATH, sha256: str = MODEL_SHA256, threshold: float | None = None
                 ) -> None:
        self.model_path = Path(model_path)
        self.sha256 = sha256
        self.threshold = threshold

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(boxes, scores)``: (N, 4) xyxy float32 boxes and (N,) scores, best first."""
        model = _load(str(self.model_path), self.sha256)
        threshold = model.stage2 if self.threshold is None else self.threshold
        gray = to_gray(image)
        all_boxes, all_scores = [], []
        for width in face_widths(gray.shape):
            feats, boxes = scan(gray, width)
            if not len(feats):
                continue
            keep = model.linear(feats) > model.stage1
            if not keep.any():
                continue
            scores = model.trees(feats[keep])
            good = scores > threshold
            all_boxes.append(boxes[keep][good])
            all_scores.append(scores[good])
        if not all_boxes or not sum(len(b) for b in all_boxes):
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        kept = nms(boxes, scores)
        return boxes[kept].astype(np.float32), scores[kept].astype(np.float32)


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
