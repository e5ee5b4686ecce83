"""dlib's ResNet (128-d) on 150x150 chips aligned by dlib's own 5-point shape predictor, as face_recognition does.

By default each chip is averaged with its mirror image (LFW View-2 98.68% -> 98.95%, TAR@FAR1e-3 95.37% -> 96.50%,
``benchmarks/dlib_mirror.py``; twice the cost). ``jitter`` > 1 is dlib's own test-time augmentation: the mean over
that many random resamplings of each chip (that many times slower, and not deterministic).
"""

from __future__ import annotations

import threading

import numpy as np

from ..models import MODEL_FILES, model_path
from .base import l2_normalise, mirror_averaged


class DlibEmbedder:
    name = "dlib"
    dim = 128

    def __init__(self, jitter: int = 0, flip: bool = True) -> None:
        self.jitter = jitter
        self.flip = flip
        self.fingerprint = dlib_fingerprint(f"dlib-j{jitter}" + ("-flip" if flip else ""))
        self._models = None
        self._lock = threading.Lock()

    def _load(self):
        if self._models is None:
            import dlib

            self._models = (
                dlib.shape_predictor(str(model_path("dlib_sp5"))),
                dlib.face_recognition_model_v1(str(model_path("dlib_resnet"))),
            )
        return self._models

    def embed(self, rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        import dlib

        img = np.ascontiguousarray(rgb)
        with self._lock:
            predictor, net = self._load()
            rects = [dlib.rectangle(*[int(round(v)) for v in box]) for box in boxes]
            shapes = dlib.full_object_detections([predictor(img, r) for r in rects])
            chips = dlib.get_face_chips(img, shapes, size=150, padding=0.25)
            if self.flip:
                chips = list(chips) + [np.ascontiguousarray(c[:, ::-1]) for c in chips]
            vectors = net.compute_face_descriptor(list(chips), self.jitter)
        out = np.array([np.array(v) for v in vectors], np.float32)
        return mirror_averaged(out, len(boxes)) if self.flip else l2_normalise(out)


def dlib_fingerprint(prefix: str) -> str:
    """``prefix`` plus the SHA-256 prefixes of dlib's ResNet and 5-point predictor."""
    return f"{prefix}:{MODEL_FILES['dlib_resnet'].sha256[:16]}:{MODEL_FILES['dlib_sp5'].sha256[:16]}"
