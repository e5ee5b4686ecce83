"""The reference every benchmark compares against: face_recognition's approach, in its few lines.

dlib's HOG detector (upsample 1), dlib's 5-point shape predictor and dlib's ResNet, as
``face_recognition.face_locations`` + ``face_encodings`` do, without importing that package (which quits the
interpreter when its model package is missing).
"""

from __future__ import annotations

import numpy as np

from ..embed.base import l2_normalise
from ..embed.dlib_resnet import dlib_fingerprint
from ..models import model_path


class FaceRecognitionReference:
    name = "face_recognition"
    dim = 128

    def __init__(self, upsample: int = 1) -> None:
        import dlib

        self.upsample = upsample
        self.fingerprint = dlib_fingerprint(f"face_recognition-hog{upsample}")
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(model_path("dlib_sp5")))
        self._net = dlib.face_recognition_model_v1(str(model_path("dlib_resnet")))

    def boxes(self, rgb: np.ndarray) -> np.ndarray:
        rects = self._detector(np.ascontiguousarray(rgb), self.upsample)
        return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)

    def embed_boxes(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        import dlib

        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        img = np.ascontiguousarray(rgb)
        shapes = dlib.full_object_detections(
            [self._predictor(img, dlib.rectangle(*[int(v) for v in b])) for b in boxes]
        )
        return l2_normalise(np.array([np.array(v) for v in self._net.compute_face_descriptor(img, shapes, 0)]))
