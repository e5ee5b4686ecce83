"""The Detector interface: an RGB image in, a ``Faces`` with boxes, scores and 5 landmarks out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..faces import Faces


@runtime_checkable
class Detector(Protocol):
    name: str
    fingerprint: str  # what its boxes depend on (model and settings): keys caches of results derived from them

    def detect(self, rgb: np.ndarray) -> Faces:
        """All faces in ``rgb`` (H, W, 3 uint8), boxes in its pixel coordinates."""
        ...


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xy0 = np.maximum(boxes[i, :2], boxes[rest, :2])
        xy1 = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(xy1 - xy0, 0, None), axis=1)
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(keep, np.int64)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N,) areas (0 for an empty box)."""
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)


def intersection_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) areas of intersection."""
    xy0 = np.maximum(a[:, None, :2], b[None, :, :2])
    xy1 = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.clip(xy1 - xy0, 0, None), axis=2)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy -> (N, M) intersection over union."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter = intersection_matrix(a, b)
    return inter / (box_areas(a)[:, None] + box_areas(b)[None, :] - inter + 1e-9)
