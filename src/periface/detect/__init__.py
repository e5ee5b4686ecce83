"""Face detection: YuNet first, BlazeFace as the fallback that finds the masked faces YuNet misses.

``FaceFinder`` is the one entry point; it composes detectors behind the ``Detector`` interface.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..align import template_landmarks_for_box
from ..config import Settings
from ..faces import Faces, concat
from ..image import scaled
from .base import Detector, iou_matrix, nms
from .blazeface import BlazeFaceDetector
from .yunet import YuNetDetector

__all__ = ["Detector", "FaceFinder", "YuNetDetector", "BlazeFaceDetector", "nms", "iou_matrix"]

# A crop is padded by this share of its size on each side: detectors are trained on faces with context around them.
_CROP_PAD = 0.3
_PADDED_MAX_SIDE = 1280  # the bordered look works on at most this size (YuNet's own limit)


class FaceFinder:
    """Finds faces with a primary detector and falls back to the next ones only when it finds nothing.

    >>> finder = FaceFinder.default()
    >>> faces = finder.find(load_image("tests/fixtures/two_people.jpg"))   # doctest: +SKIP
    """

    def __init__(self, detectors: Sequence[Detector], min_face_px: int = 16, second_look: bool = True) -> None:
        if not detectors:
            raise ValueError("FaceFinder needs at least one detector")
        self.detectors = list(detectors)
        self.min_face_px = min_face_px
        # A face that fills the frame (a tight crop passed as a photo) leaves the detectors no context, and a crop
        # inside a grey border can hide a face they would find as it is: when the first look finds nothing, look
        # the other way. Real masked crops found: 95.1% -> 97.4% as photos, 95.4% -> 97.4% in crop mode
        # (benchmarks/crop_detection.py).
        self.second_look = second_look

    @property
    def fingerprint(self) -> str:
        """What the faces found depend on: each detector's model and settings, in order, and how it looks."""
        looks = f":second-look:{_CROP_PAD}:{_PADDED_MAX_SIDE}" if self.second_look else ""
        return "det:" + "+".join(d.fingerprint for d in self.detectors) + f":min{self.min_face_px}" + looks

    @classmethod
    def default(cls, settings: Settings | None = None) -> "FaceFinder":
        s = settings or Settings()
        return cls(
            [
                YuNetDetector(s.yunet_score, s.nms_iou, s.detect_max_side),
                BlazeFaceDetector("short", s.blazeface_score),
                BlazeFaceDetector("full", s.blazeface_score),
            ],
            min_face_px=s.min_face_px,
        )

    def find(self, rgb: np.ndarray) -> Faces:
        """Faces in a whole image (a photo or a frame)."""
        faces = self._first_hit(rgb)
        if len(faces) == 0 and self.second_look:
            faces = self._find_padded(rgb)
        return faces

    def find_in_crop(self, rgb: np.ndarray) -> Faces:
        """Exactly one face for an image that *is* a face crop: the largest detection, or the whole crop.

        The crop is padded first, since detectors expect context around a face, then looked at as it is; when no
        detector fires either way, the template's landmarks are laid over the crop so that alignment still happens.
        """
        faces = self._find_padded(rgb)
        if len(faces) == 0 and self.second_look:
            faces = self._first_hit(rgb)
        if len(faces):
            return faces.select(faces.largest())
        h, w = rgb.shape[:2]
        box = np.array([0, 0, w, h], np.float32)
        return Faces(
            boxes=box[None],
            scores=np.zeros((1,), np.float32),
            landmarks=template_landmarks_for_box(box)[None],
            image_size=(h, w),
            detector=["crop"],
            notes=["no detector fired inside the crop; the whole crop was taken as the face"],
        )

    def _first_hit(self, rgb: np.ndarray) -> Faces:
        """The faces of the first detector that finds any."""
        for detector in self.detectors:
            faces = self._keep_plausible(detector.detect(rgb))
            if len(faces):
                return faces
        return Faces.empty(rgb.shape[:2])

    def _find_padded(self, rgb: np.ndarray) -> Faces:
        """Faces found in ``rgb`` inside a grey border, in ``rgb``'s coordinates (boxes may reach past its edges).

        A large image is shrunk to ``_PADDED_MAX_SIDE`` first: a face that fills the frame stays large, and a 40 MP
        photo with no face does not cost a 100 MP bordered copy.
        """
        h, w = rgb.shape[:2]
        scale = min(1.0, _PADDED_MAX_SIDE / max(h, w))
        small = scaled(rgb, scale)
        sh, sw = small.shape[:2]
        pad_y, pad_x = int(sh * _CROP_PAD), int(sw * _CROP_PAD)
        padded = cv2.copyMakeBorder(small, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        faces = self._first_hit(padded)
        offset = np.array([pad_x, pad_y], np.float32)
        faces.boxes = (faces.boxes - np.tile(offset, 2)) / scale
        faces.landmarks = (faces.landmarks - offset) / scale
        faces.image_size = (h, w)
        return faces

    def find_all(self, rgb: np.ndarray, iou_threshold: float = 0.4) -> Faces:
        """Union of every detector's faces, duplicates removed: for crowds, where each detector misses others."""
        parts = [self._keep_plausible(d.detect(rgb)) for d in self.detectors]
        faces = concat(parts, rgb.shape[:2])
        if len(faces) == 0:
            return faces
        return faces.select(nms(faces.boxes, faces.scores, iou_threshold))

    def _keep_plausible(self, faces: Faces) -> Faces:
        if len(faces) == 0:
            return faces
        wh = faces.boxes[:, 2:] - faces.boxes[:, :2]
        finite = np.isfinite(faces.landmarks).all(axis=(1, 2)) & np.isfinite(faces.boxes).all(axis=1)
        ok = finite & (np.nan_to_num(wh.min(axis=1)) >= self.min_face_px)
        return faces.select(np.flatnonzero(ok))
