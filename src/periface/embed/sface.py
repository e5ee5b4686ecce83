"""SFace (OpenCV Zoo, int8, 128-d) on 112x112 ArcFace-aligned crops, run by ``cv2.FaceRecognizerSF``."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..align import align_faces
from ..models import MODEL_FILES, model_path
from .base import l2_normalise


class SFaceEmbedder:
    name = "sface"
    dim = 128
    fingerprint = f"sface:{MODEL_FILES['sface'].sha256[:16]}"

    def __init__(self) -> None:
        self._net: cv2.FaceRecognizerSF | None = None
        self._lock = threading.Lock()

    def _model(self) -> cv2.FaceRecognizerSF:
        if self._net is None:
            self._net = cv2.FaceRecognizerSF.create(str(model_path("sface")), "")
        return self._net

    def embed(self, rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.embed_aligned(align_faces(rgb, landmarks, 112))

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) RGB crops already aligned to the ArcFace template -> (N, 128)."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            net = self._model()
            feats = [net.feature(np.ascontiguousarray(c[:, :, ::-1])).ravel() for c in crops]
        return l2_normalise(np.stack(feats))
