"""Faces linked across frames: a small ByteTrack-style tracker, and which of a track's faces is the best.

Detections are split by score, confident ones are matched first to the predicted (constant-velocity) boxes of live
tracks by IoU with the Hungarian method, weak ones may only extend existing tracks, and a track ends after
``max_missed`` frames unseen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..detect.base import iou_matrix
from ..faces import Faces


@dataclass
class Track:
    id: int
    box: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    hits: int = 1
    missed: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (self.missed + 1)


class IoUTracker:
    """ByteTrack-style association by IoU; ``update`` returns the track id of each detection (-1: unassigned).

    >>> t = IoUTracker()
    >>> t.update(np.array([[10, 10, 50, 50]], np.float32), np.array([0.9]))
    array([0])
    """

    def __init__(self, iou_threshold: float = 0.2, high_score: float = 0.5, max_missed: int = 15) -> None:
        self.iou_threshold = iou_threshold
        self.high_score = high_score
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self.ended: list[Track] = []  # tracks dropped at the last update, for the caller to close
        self._next = 0

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        ids = np.full(len(boxes), -1, np.int64)
        live = list(range(len(self.tracks)))
        high = np.flatnonzero(scores >= self.high_score)
        low = np.flatnonzero(scores < self.high_score)
        for dets in (high, low):
            live = self._associate(dets, live, boxes, ids)
        for t in (self.tracks[i] for i in live):  # not seen in this frame
            t.missed += 1
        for d in high[ids[high] < 0]:  # only confident detections start tracks
            self.tracks.append(Track(self._next, boxes[d].copy()))
            ids[d] = self._next
            self._next += 1
        self.ended = [t for t in self.tracks if t.missed > self.max_missed]
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return ids

    def _associate(self, dets: np.ndarray, live: list[int], boxes: np.ndarray, ids: np.ndarray) -> list[int]:
        if len(dets) == 0 or not live:
            return live
        pred = np.stack([self.tracks[i].predicted() for i in live])
        iou = iou_matrix(pred, boxes[dets])
        rows, cols = linear_sum_assignment(-iou)
        matched = set()
        for r, c in zip(rows, cols):
            if iou[r, c] < self.iou_threshold:
                continue
            t, d = self.tracks[live[r]], dets[c]
            step = (boxes[d] - t.box) / (t.missed + 1)
            t.velocity = 0.6 * t.velocity + 0.4 * step
            t.box, t.missed = boxes[d].copy(), 0
            t.hits += 1
            ids[d] = t.id
            matched.add(r)
        return [i for k, i in enumerate(live) if k not in matched]


# ------------------------------------------------------------------------------------------------- quality


def face_quality(faces: Faces) -> np.ndarray:
    """(N,) in [0, 1]: detector score x size (saturating at 112 px, the recogniser's input) x frontalness.

    Frontalness compares the nose tip's distance to each eye: equal in a frontal face, one-sided when turned.
    """
    if len(faces) == 0:
        return np.zeros((0,), np.float32)
    side = np.min(faces.boxes[:, 2:] - faces.boxes[:, :2], axis=1)
    size = np.clip(side / 112.0, 0, 1)
    lm = faces.landmarks
    d_left = np.linalg.norm(lm[:, 2] - lm[:, 0], axis=1)
    d_right = np.linalg.norm(lm[:, 2] - lm[:, 1], axis=1)
    frontal = 1.0 - np.abs(d_left - d_right) / np.maximum(d_left + d_right, 1e-6)
    return (np.clip(faces.scores, 0, 1) * size * np.clip(frontal, 0, 1)).astype(np.float32)
